#!/usr/bin/env bash
# in_place.sh — region processing written back into the array it reads (an update in
# place) against the same regions written into a copy (out of place):
#
#   bench/in_place.sh [--workers N] [--repeat R] [--quick]
#
# Input: u16 1x8x4000x4000 (256 MB, chunks 1x1x1000x1000, made by Tessera), 50 regions of
# about 1000x1000 from bench/rois.py (the `regions` workload's generator: overlapping pairs,
# shared chunks, corners). Job: `x.map(gaussian((0, 0, 2, 2))).write(OUT, regions=rs)`;
# in place OUT is the input itself, out of place a copy of it made before the run (not
# timed). Each run starts from a fresh copy; the runs alternate, R pairs (default 3), and
# the medians of wall time, CPU time and peak RSS are printed with their ratio. The two
# results are compared element for element. TESSERA_BIN picks the binary (default: the
# release build, made first).
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
workers=2 repeat=3 planes=8 side=4000 nrois=50
while [[ $# -gt 0 ]]; do
    case "$1" in
        --workers) workers="${2:?}"; shift ;;
        --repeat) repeat="${2:?}"; shift ;;
        --quick) planes=2 side=4000 nrois=10 ;;
        -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "in_place.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
    shift
done
source "$repo_root/bench/stats.sh"
release_bin
py=$(bash scripts/python-env.sh | tail -n 1)
work="${BENCH_WORK:-$repo_root/bench/work}/in_place-$planes-$side"
mkdir -p "$work"
cd "$work"
shape="(1, $planes, $side, $side)"
if [[ ! -d pristine.zarr ]]; then
    echo "random($shape, dtype=\"u16\", chunks=(1, 1, 1000, 1000), seed=5).write(\"pristine.zarr\", overwrite=true)" >gen.tsr
    "$TESSERA_BIN" run gen.tsr --quiet --workers "$workers"
fi
PYTHONPATH="$repo_root/bench" "$py" - "$planes" "$side" "$nrois" <<'PY'
import json, sys
from rois import make_rois
planes, side, n = map(int, sys.argv[1:])
json.dump(make_rois([1, planes, side, side], n, [1, 1, 1000, 1000]), open("rois.json", "w"))
PY
cat >in_place.tsr <<'TSR'
let x = zarr("a.zarr")
x.map(gaussian((0, 0, 2, 2))).write("a.zarr", regions=rois("rois.json"))
TSR
cat >out_of_place.tsr <<'TSR'
let x = zarr("a.zarr")
x.map(gaussian((0, 0, 2, 2))).write("b.zarr", regions=rois("rois.json"))
TSR
# "<wall s> <cpu s> <peak RSS MiB>" of one run.
measure() {
    local log t0 t1
    log=$(mktemp)
    t0=$(date +%s.%N)
    /usr/bin/time -v "$TESSERA_BIN" run "$1" --quiet --workers "$workers" >/dev/null 2>"$log" \
        || { cat "$log" >&2; rm -f "$log"; exit 1; }
    t1=$(date +%s.%N)
    awk -v w="$(echo "$t1 - $t0" | bc)" '
        /User time/ {u=$NF} /System time/ {s=$NF} /Maximum resident/ {r=$NF}
        END {printf "%.3f %.3f %.0f\n", w, u + s, r / 1024}' "$log"
    rm -f "$log"
}
fresh() { rm -rf a.zarr b.zarr; cp -r pristine.zarr a.zarr; sync; }
ins=() outs=()
for ((i = 0; i < repeat; i++)); do
    fresh; cp -r a.zarr b.zarr; sync
    outs+=("$(measure out_of_place.tsr)")
    mv b.zarr want.zarr
    fresh
    ins+=("$(measure in_place.tsr)")
    "$py" -c "import zarr, numpy as np, sys; a = zarr.open_array('a.zarr', mode='r')[:]; b = zarr.open_array('want.zarr', mode='r')[:]; sys.exit(0 if np.array_equal(a, b) else 'in place differs from out of place')"
    rm -rf want.zarr
done
for k in 1 2 3; do
    o=$(col "$k" "${outs[@]}"); n=$(col "$k" "${ins[@]}")
    name=$(echo "wall_s cpu_s peak_rss_mib" | cut -d' ' -f"$k")
    printf '%-13s out of place %8s   in place %8s   ratio %s\n' "$name" "$o" "$n" "$(echo "scale=3; $n / $o" | bc)"
done
echo "($repeat alternating pairs, $workers workers, $nrois regions over u16 $shape, binary $TESSERA_BIN)"
