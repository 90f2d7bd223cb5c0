#!/usr/bin/env bash
# scale.sh — planning and scheduling costs of the release `tessera` binary:
#
#   bench/scale.sh plan       # plan a 1,000,000-chunk pipeline: seconds and peak RSS
#   bench/scale.sh overhead   # per-task cost of near-empty tasks (µs/task)
#   bench/scale.sh chain      # 10 fused elementwise ops vs 1 over a 1 GiB array
#   bench/scale.sh            # all three
#
# Options: --workers N (default 2). Scripts and outputs go to bench/work/scale/
# (git-ignored). Times and peak memory come from /usr/bin/time -v.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
workers=2
what=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --workers) workers="${2:?--workers needs a value}"; shift ;;
        -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) what+=("$1") ;;
    esac
    shift
done
[[ ${#what[@]} -eq 0 ]] && what=(plan overhead chain)

cargo build --release --quiet --bin tessera
bin="$repo_root/target/release/tessera"
work="$repo_root/bench/work/scale"
mkdir -p "$work"
cd "$work"

# Run a command; print "<wall seconds> <peak RSS in MiB> <CPU seconds>" (RSS and user +
# system CPU time from /usr/bin/time -v; CPU time is the steadier figure on a busy machine).
measure() {
    local log t0 t1
    log=$(mktemp)
    t0=$(date +%s.%N)
    /usr/bin/time -v "$@" >/dev/null 2>"$log" || { cat "$log" >&2; rm -f "$log"; return 1; }
    t1=$(date +%s.%N)
    awk -F': ' -v t0="$t0" -v t1="$t1" '
        /Maximum resident set size/ { rss = $2 / 1024 }
        /User time \(seconds\)|System time \(seconds\)/ { cpu += $2 }
        END { printf "%.4f %.1f %.3f\n", t1 - t0, rss, cpu }' "$log"
    rm -f "$log"
}

for w in "${what[@]}"; do
    case "$w" in
    plan)
        cat > plan.tsr <<'TSR'
# 1,000,000 chunks per output; nothing runs, only the plan is built.
(zeros((100000, 100000), chunks=(100, 100)) + 1).write("big.zarr", codec="none", overwrite=true)
random((100000, 100000), chunks=(100, 100)).map(gaussian(1)).write("blur.zarr", overwrite=true)
TSR
        read -r s rss _ < <(measure "$bin" plan plan.tsr --workers "$workers")
        echo "plan: 2 stages x 1,000,000 chunk tasks planned in ${s} s, peak RSS ${rss} MiB"
        ;;
    overhead)
        # 250,000 one-element chunks whose value equals the fill value: each task computes
        # its chunk and the store drops it, so the time is the per-task machinery.
        cat > overhead.tsr <<'TSR'
zeros((500, 500), dtype="u8", chunks=(1, 1)).write("empty.zarr", codec="none", overwrite=true)
TSR
        read -r s _ cpu < <(measure "$bin" run overhead.tsr --quiet --workers "$workers")
        awk -v s="$s" -v c="$cpu" -v w="$workers" 'BEGIN { printf "overhead: 250000 tasks in %.3f s = %.2f us/task wall, %.2f us/task CPU (%d workers)\n", s, s * 1e6 / 250000, c * 1e6 / 250000, w }'
        ;;
    chain)
        # A 1 GiB f32 array (random, generated per chunk) through 1 or 10 elementwise ops;
        # (add, mul, sub, div, add, mul, sub, pow, sqrt, add), fused into one kernel;
        # the final * 0 makes every chunk equal the fill value, so nothing is stored.
        cat > one.tsr <<'TSR'
let x = random((16384, 16384), dtype="f32", chunks=(1024, 1024))
((x + 1) * 0).write("one.zarr", codec="none", overwrite=true)
TSR
        cat > ten.tsr <<'TSR'
let x = random((16384, 16384), dtype="f32", chunks=(1024, 1024))
let a = (((x + 1) * 1.5 - 2) / 3 + 4) * 0.5 - 1
let y = sqrt(a ** 2) + x
(y * 0).write("ten.zarr", codec="none", overwrite=true)
TSR
        read -r s1 _ c1 < <(measure "$bin" run one.tsr --quiet --workers "$workers")
        read -r s10 _ c10 < <(measure "$bin" run ten.tsr --quiet --workers "$workers")
        awk -v a="$s1" -v b="$s10" -v c="$c1" -v d="$c10" 'BEGIN { printf "chain: 1 op %.3f s (%.3f s CPU), 10 ops %.3f s (%.3f s CPU); ratio %.2f wall, %.2f CPU\n", a, c, b, d, b / a, d / c }'
        ;;
    *) echo "unknown benchmark: $w" >&2; exit 2 ;;
    esac
done
