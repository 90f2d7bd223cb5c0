#!/usr/bin/env bash
# ome_pyramid.sh — an OME-Zarr pyramid written by Tessera's `write_ome` against level 0
# written alone and against ome-zarr-py's `write_image` (dask) on the same data:
#
#   bench/ome_pyramid.sh [--workers N] [--repeat R] [--quick] [--keep]
#
# Input: u16 64x4096x4096 (2.15 GB; --quick 16x2048x2048, 134 MB), chunks 16x512x512, zstd
# 3, made by Tessera: a per-plane offset plus a diagonal ramp plus 6 bits of noise (about
# 2:1 with zstd, like bench/bench.py's microscopy-like inputs). Jobs, all with the same
# chunks (clipped to each level's shape) and codec (zstd 3):
#   level0   zarr("in.zarr").write_ome("l0.ome.zarr", levels=1, axes="zyx", chunks=...)
#   pyramid  zarr("in.zarr").write_ome("p.ome.zarr", levels=5, axes="zyx", chunks=...)
#            (each level the truncating mean of 2x2x2 blocks of the level above)
#   ome-zarr-py  bench/ome_zarr_py_pyramid.py write: write_image(da.from_zarr(...),
#            axes="zyx", scale_factors 2..16 on z, y and x, method=LOCAL_MEAN), dask
#            threaded scheduler with N workers
# Each is one process under /usr/bin/time -v (wall, user+sys CPU, peak RSS). The three
# alternate, R rounds (default 3); medians and every run are printed, with the ratios
# pyramid/level0 and ome-zarr-py/pyramid. Round 1 checks the results with
# `ome_zarr_py_pyramid.py verify` (level 0 = input byte for byte, shapes and values of
# every level against ome-zarr-py and against a NumPy block mean); later rounds check
# Tessera's pyramid is byte for byte round 1's. The work directory is deleted at the end
# unless --keep. TESSERA_BIN picks the binary (default: the release build, made first);
# BENCH_PYTHON the Python (default: scripts/python-env.sh's venv).
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
workers=2 repeat=3 planes=64 side=4096 keep=0 levels=5
chunks="16, 512, 512"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --workers) workers="${2:?}"; shift ;;
        --repeat) repeat="${2:?}"; shift ;;
        --quick) planes=16 side=2048 ;;
        --keep) keep=1 ;;
        -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "ome_pyramid.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
    shift
done
source "$repo_root/bench/stats.sh"
release_bin
py="${BENCH_PYTHON:-}"
[[ -n "$py" ]] || py=$(bash scripts/python-env.sh | tail -n 1)
pyscript="$repo_root/bench/ome_zarr_py_pyramid.py"
work="${BENCH_WORK:-$repo_root/bench/work}/ome_pyramid-$planes-$side"
mkdir -p "$work"
cd "$work"
shape="($planes, $side, $side)"
if [[ ! -f in.zarr/zarr.json ]]; then
    rm -rf in.zarr
    cat >gen.tsr <<TSR
let z = arange($planes, chunks=16)[:, none, none]
let r = arange($side, chunks=512)[none, :, none]
let c = arange($side, chunks=512)[none, none, :]
let noise = (random($shape, dtype="f32", chunks=($chunks), seed=7) * 64).astype("u16")
(z * 50 + 400 + (r + c) // 16 + noise).astype("u16").write("in.zarr", codec="zstd", level=3, chunks=($chunks), overwrite=true)
TSR
    "$TESSERA_BIN" run gen.tsr --quiet --workers "$workers"
fi
echo "input: u16 $shape chunks ($chunks), $(du -sh in.zarr | cut -f1) on disk"
cat >level0.tsr <<TSR
zarr("in.zarr").write_ome("l0.ome.zarr", levels=1, axes="zyx", chunks=($chunks), overwrite=true)
TSR
cat >pyramid.tsr <<TSR
zarr("in.zarr").write_ome("p.ome.zarr", levels=$levels, axes="zyx", chunks=($chunks), overwrite=true)
TSR
# "<wall s> <cpu s> <peak RSS MiB>" of one run of the command given; its stdout goes to
# last.out.
measure() {
    local log t0 t1
    log=$(mktemp)
    t0=$(date +%s.%N)
    /usr/bin/time -v "$@" >last.out 2>"$log" || { cat "$log" >&2; rm -f "$log"; exit 1; }
    t1=$(date +%s.%N)
    awk -v w="$(echo "$t1 - $t0" | bc)" '
        /User time/ {u=$NF} /System time/ {s=$NF} /Maximum resident/ {r=$NF}
        END {printf "%.3f %.3f %.0f\n", w, u + s, r / 1024}' "$log"
    rm -f "$log"
}
tessera() { rm -rf "$2"; sync; measure "$TESSERA_BIN" run "$1" --quiet --workers "$workers"; }
digest() { (cd "$1" && find . -type f ! -name '.tessera-resume.log' | sort | xargs sha256sum) | sha256sum; }
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
l0s=() pys=() pyrs=() inner=()
for ((i = 0; i < repeat; i++)); do
    l0s+=("$(tessera level0.tsr l0.ome.zarr)")
    pyrs+=("$(tessera pyramid.tsr p.ome.zarr)")
    rm -rf py.ome.zarr; sync
    pys+=("$(measure "$py" "$pyscript" write in.zarr py.ome.zarr --chunks "${chunks// /}" \
        --levels "$levels" --workers "$workers")")
    inner+=("$("$py" -c 'import json, sys; print(json.load(open("last.out"))["write_image_s"])')")
    echo "round $((i + 1)) (load $(cut -d' ' -f1 /proc/loadavg)): level0 ${l0s[-1]} | pyramid ${pyrs[-1]} | ome-zarr-py ${pys[-1]} (write_image ${inner[-1]} s)"
    if ((i == 0)); then
        "$py" "$pyscript" verify in.zarr l0.ome.zarr p.ome.zarr py.ome.zarr --levels "$levels"
        want=$(digest p.ome.zarr)
    else
        [[ "$(digest p.ome.zarr)" == "$want" ]] || { echo "ome_pyramid.sh: the pyramid of round $((i + 1)) differs from round 1's" >&2; exit 1; }
    fi
done
for k in 1 2 3; do
    a[k]=$(col "$k" "${l0s[@]}"); b[k]=$(col "$k" "${pyrs[@]}"); c[k]=$(col "$k" "${pys[@]}")
done
ratio() { echo "scale=3; $1 / $2" | bc | sed 's/^\./0./'; }
echo
echo "medians of $repeat rounds ($workers workers, u16 $shape, chunks ($chunks), $levels levels, binary $TESSERA_BIN):"
printf '%-12s %9s %9s %14s\n' job wall_s cpu_s peak_rss_mib
printf '%-12s %9s %9s %14s\n' level0 "${a[1]}" "${a[2]}" "${a[3]}"
printf '%-12s %9s %9s %14s\n' pyramid "${b[1]}" "${b[2]}" "${b[3]}"
printf '%-12s %9s %9s %14s   (inside write_image: %s s)\n' ome-zarr-py "${c[1]}" "${c[2]}" "${c[3]}" \
    "$(printf '%s\n' "${inner[@]}" | median)"
printf '%-28s wall %6s   cpu %6s   rss %6s\n' "ratio pyramid/level0" \
    "$(ratio "${b[1]}" "${a[1]}")" "$(ratio "${b[2]}" "${a[2]}")" "$(ratio "${b[3]}" "${a[3]}")"
printf '%-28s wall %6s   cpu %6s   rss %6s\n' "ratio ome-zarr-py/pyramid" \
    "$(ratio "${c[1]}" "${b[1]}")" "$(ratio "${c[2]}" "${b[2]}")" "$(ratio "${c[3]}" "${b[3]}")"
echo "(per-round ratios pyramid/level0 and ome-zarr-py/pyramid, wall:"
for ((i = 0; i < repeat; i++)); do
    read -r w0 _ <<<"${l0s[i]}"; read -r w1 _ <<<"${pyrs[i]}"; read -r w2 _ <<<"${pys[i]}"
    echo "  round $((i + 1)): $(ratio "$w1" "$w0")  $(ratio "$w2" "$w1")"
done
echo ")"
cd "$repo_root"
if ((keep == 0)); then rm -rf "$work"; else echo "kept $work"; fi
