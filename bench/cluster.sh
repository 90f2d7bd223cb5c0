#!/usr/bin/env bash
# bench/cluster.sh — the cluster executors on this machine's one-node engines
# (scripts/slurm-local.sh, scripts/hq-local.sh):
#   1. per-task overhead: 200 tiny chunk tasks, one per exported task, through each engine;
#      (wall time of the engine run - wall time of the local run) / tasks;
#   2. 10,000 chunk tasks batched with --chunks-per-task through Slurm and HyperQueue,
#      against the local run of the same script (targets: Slurm within 1.5x, HyperQueue
#      within 1.2x).
# Outputs are compared file by file (the local run's completion record left out).
# Figures are ratios measured within one run of this script.
#
#   bash bench/cluster.sh                 # KPT=2500 chunks per task
#   KPT=1000 bash bench/cluster.sh
set -euo pipefail
cd "$(dirname "$0")/.."
kpt="${KPT:-2500}"
cargo build --quiet
bin="${CARGO_TARGET_DIR:-$PWD/target}/debug/tessera"
py=$(bash scripts/python-env.sh 2>/dev/null | tail -n 1)
bash scripts/slurm-local.sh >/dev/null
export TESSERA_HQ_PYTHON="$py"
HQ_SERVER_DIR=$(bash scripts/hq-local.sh 2>/dev/null | tail -n 1)
export HQ_SERVER_DIR
work=$(mktemp -d /tmp/tessera-bench-cluster.XXXXXX)
trap 'rm -rf "$work"' EXIT

now() { date +%s.%N; }
# run NAME SCRIPT ARGS...: wall seconds of `tessera run SCRIPT ARGS` in a fresh directory
run() {
    local name=$1 script=$2
    shift 2
    local d="$work/$name"
    rm -rf "$d"
    mkdir -p "$d"
    printf '%s\n' "$script" >"$d/job.tsr"
    local t0 t1
    t0=$(now)
    (cd "$d" && "$bin" run job.tsr --quiet "$@") || { echo "bench: $name failed" >&2; exit 1; }
    t1=$(now)
    awk "BEGIN { print $t1 - $t0 }"
}
calc() { awk "BEGIN { print $* }"; }
ratio() { printf '%.2f' "$(calc "$1 / $2")"; }

tiny='let x = random((200, 100), dtype="f32", chunks=(10, 10), seed=1)
(x * 2 + 1).write("o.zarr")'
echo "== per-task overhead: 200 chunk tasks, --chunks-per-task 1, --jobs 2"
l=$(run tiny-local "$tiny")
s=$(run tiny-slurm "$tiny" --executor slurm --chunks-per-task 1 --jobs 2)
h=$(run tiny-hq "$tiny" --executor hyperqueue --chunks-per-task 1)
printf 'local      %6.2f s\n' "$l"
printf 'slurm      %6.2f s   %.0f ms per task\n' "$s" "$(calc "($s - $l) * 1000 / 200")"
printf 'hyperqueue %6.2f s   %.0f ms per task\n' "$h" "$(calc "($h - $l) * 1000 / 200")"

big='let x = random((6400, 6400), dtype="f32", chunks=(64, 64), seed=2)
x.map(gaussian(2)).write("o.zarr")'
echo "== 10,000 chunk tasks, --chunks-per-task $kpt"
l=$(run big-local "$big")
s=$(run big-slurm "$big" --executor slurm --chunks-per-task "$kpt")
h=$(run big-hq "$big" --executor hyperqueue --chunks-per-task "$kpt")
cmp -s <(cd "$work/big-local" && find o.zarr -type f ! -name ".tessera-*" -exec sha256sum {} + | sort -k2) \
    <(cd "$work/big-slurm" && find o.zarr -type f ! -name ".tessera-*" -exec sha256sum {} + | sort -k2) \
    || { echo "bench: slurm output differs from local" >&2; exit 1; }
cmp -s <(cd "$work/big-local" && find o.zarr -type f ! -name ".tessera-*" -exec sha256sum {} + | sort -k2) \
    <(cd "$work/big-hq" && find o.zarr -type f ! -name ".tessera-*" -exec sha256sum {} + | sort -k2) \
    || { echo "bench: hyperqueue output differs from local" >&2; exit 1; }
printf 'local      %6.2f s\n' "$l"
printf 'slurm      %6.2f s   %sx local (target 1.5x)\n' "$s" "$(ratio "$s" "$l")"
printf 'hyperqueue %6.2f s   %sx local (target 1.2x)\n' "$h" "$(ratio "$h" "$l")"

echo "== exporting a 1,000,000-chunk plan (target: under 2 s, under 50 MB on disk)"
d="$work/export"
mkdir -p "$d"
printf '%s\n' 'let x = zarr("in.zarr")' 'x.map(gaussian(1)).write("o.zarr")' >"$d/job.tsr"
# Metadata only: an empty 10 GB array of 1,000,000 chunks.
"$py" -c 'import sys, zarr; zarr.create_array(sys.argv[1], shape=(100000, 100000), chunks=(100, 100), dtype="u8")' "$d/in.zarr"
t0=$(now)
(cd "$d" && "$bin" plan job.tsr --export plan >/dev/null)
t1=$(now)
printf 'export     %6.2f s   %s on disk\n' "$(calc "$t1 - $t0")" "$(du -sh "$d/plan" | cut -f1)"
