#!/usr/bin/env bash
# chain.sh — chunk-level chaining against stage-by-stage waves, on a two-stage pipeline
# whose second stage reads what the first writes:
#
#   bench/chain.sh [--workers N] [--repeat R] [--quick]
#
# Input: f32 8192x8192 (268 MB, chunks 1024x1024, zstd 3, made by Tessera). Job:
#   zarr("in.zarr").map(gaussian(2)).write("mid.zarr") ; zarr("mid.zarr").map(gaussian(2)).write("out.zarr")
# Chained (the default): each task of the second stage starts once the chunks it reads
# (halo included) are written, and reads them from the chunk cache the first stage hands
# them to. Waved (TESSERA_CHAIN=0): the second stage starts when the first has finished.
# The runs alternate, R pairs (default 3); medians of wall time, CPU time and peak RSS
# are printed with their ratio; the two results are compared byte for byte. TESSERA_BIN
# picks the binary (default: the release build, made first).
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
workers=2 repeat=3 side=8192
while [[ $# -gt 0 ]]; do
    case "$1" in
        --workers) workers="${2:?}"; shift ;;
        --repeat) repeat="${2:?}"; shift ;;
        --quick) side=4096 ;;
        -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "chain.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
    shift
done
source "$repo_root/bench/stats.sh"
release_bin
work="${BENCH_WORK:-$repo_root/bench/work}/chain-$side"
mkdir -p "$work"
cd "$work"
if [[ ! -d in.zarr ]]; then
    echo "(random(($side, $side), dtype=\"f32\", chunks=(1024, 1024), seed=4) * 100).write(\"in.zarr\", overwrite=true)" >gen.tsr
    "$TESSERA_BIN" run gen.tsr --quiet --workers "$workers"
fi
cat >job.tsr <<'TSR'
zarr("in.zarr").map(gaussian(2)).write("mid.zarr", overwrite=true)
zarr("mid.zarr").map(gaussian(2)).write("out.zarr", overwrite=true)
TSR
# "<wall s> <cpu s> <peak RSS MiB>" of one run; $1 = value of TESSERA_CHAIN.
measure() {
    local log t0 t1
    log=$(mktemp)
    rm -rf mid.zarr out.zarr; sync
    t0=$(date +%s.%N)
    TESSERA_CHAIN="$1" /usr/bin/time -v "$TESSERA_BIN" run job.tsr --quiet --workers "$workers" \
        >/dev/null 2>"$log" || { cat "$log" >&2; rm -f "$log"; exit 1; }
    t1=$(date +%s.%N)
    awk -v w="$(echo "$t1 - $t0" | bc)" '
        /User time/ {u=$NF} /System time/ {s=$NF} /Maximum resident/ {r=$NF}
        END {printf "%.3f %.3f %.0f\n", w, u + s, r / 1024}' "$log"
    rm -f "$log"
}
digest() { (cd "$1" && find . -type f ! -name '.tessera-resume.log' | sort | xargs sha256sum) | sha256sum; }
waved=() chained=()
for ((i = 0; i < repeat; i++)); do
    waved+=("$(measure 0)")
    want=$(digest out.zarr)
    chained+=("$(measure 1)")
    [[ "$(digest out.zarr)" == "$want" ]] || { echo "chain.sh: the chained result differs" >&2; exit 1; }
done
for k in 1 2 3; do
    o=$(col "$k" "${waved[@]}"); n=$(col "$k" "${chained[@]}")
    name=$(echo "wall_s cpu_s peak_rss_mib" | cut -d' ' -f"$k")
    printf '%-13s waved %8s   chained %8s   ratio %s\n' "$name" "$o" "$n" "$(echo "scale=3; $n / $o" | bc)"
done
echo "($repeat alternating pairs, $workers workers, f32 ${side}x${side} in 1024x1024 chunks, binary $TESSERA_BIN)"
