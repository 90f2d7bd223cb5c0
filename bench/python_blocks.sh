#!/usr/bin/env bash
# python_blocks.sh — Python block functions (python(...) with map) against native ops and dask.
#
#   bash bench/python_blocks.sh          # BENCH_MB=1024 (the 1 GiB run); BENCH_MB=128 for a smoke run
#   BENCH_REPEAT=N pairs of overhead runs (median, default 5); BENCH_SCALE_REPEAT=N rounds of the
#   scaling runs (median, default 3); BENCH_WORK=DIR for the data
#
# 1. Overhead: `x + 0` against `x.map(python("blocks.py:identity"))` over a u16 array of
#    BENCH_MB megabytes (chunks 8 x 512 x 512, 4 MiB), both written with the default codec,
#    2 workers. Target: the Python identity costs at most 1.3x the native op.
# 2. Scaling: CPU-heavy functions (bench/py/blocks.py: `median`, scipy's median filter per
#    plane; `loops`, a pure-Python loop over every row) over a BENCH_MB/16 megabyte u16
#    array (chunks 1 x 512 x 512), with 1 and 2 workers, and dask's threaded map_blocks with
#    2 workers over the same function. Targets: >= 1.8x from 1 to 2 workers; faster than dask.
# Every output is compared with dask's (or the native op's) by zarr-python. Figures are from
# one run on one machine: compare the ratios, not the seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
mb="${BENCH_MB:-1024}"
work="${BENCH_WORK:-$repo/bench/work}/python_blocks"
rm -rf "$work"
mkdir -p "$work"

py=$(bash scripts/python-env.sh | tail -n 1)
export TESSERA_PYTHON="$py"
cargo build --quiet
tessera="${CARGO_TARGET_DIR:-$repo/target}/debug/tessera"
blocks="$repo/bench/py/blocks.py"

seconds() { # command... -> wall seconds on stdout
    local t0 t1
    t0=$(date +%s.%N)
    "$@" >/dev/null
    t1=$(date +%s.%N)
    echo "$t1 - $t0" | bc -l
}
run() { # name script-text workers
    echo "$2" >"$work/$1.tsr"
    seconds "$tessera" run "$work/$1.tsr" --workers "$3" --quiet
}

# 1. Overhead of the Python round trip.
planes=$((mb / 2))
echo "random(($planes, 1024, 1024), dtype=\"u16\", chunks=(8, 512, 512), seed=3).write(\"$work/big.zarr\")" >"$work/gen-big.tsr"
"$tessera" run "$work/gen-big.tsr" --quiet
# Alternating runs, the median of each (one run of about a second is at the mercy of the
# disk's write-back): BENCH_REPEAT pairs, 5 by default.
reps="${BENCH_REPEAT:-5}"
tn=() ti=()
for ((k = 0; k < reps; k++)); do
    tn+=("$(run native "(zarr(\"$work/big.zarr\") + 0).write(\"$work/native.zarr\", overwrite=true)" 2)")
    ti+=("$(run ident "zarr(\"$work/big.zarr\").map(python(\"$blocks:identity\")).write(\"$work/ident.zarr\", overwrite=true)" 2)")
done
source "$repo/bench/stats.sh"
t_native=$(col 1 "${tn[@]}")
t_ident=$(col 1 "${ti[@]}")
"$py" bench/py/same.py "$work/native.zarr" "$work/ident.zarr"
"$py" bench/py/same.py "$work/big.zarr" "$work/ident.zarr"
rm -rf "$work/native.zarr" "$work/ident.zarr"

# 2. CPU-heavy functions: 1 and 2 workers, and dask's threads.
small=$((mb / 32))
[[ $small -ge 2 ]] || small=2
echo "random(($small, 1024, 1024), dtype=\"u16\", chunks=(1, 512, 512), seed=4).write(\"$work/small.zarr\")" >"$work/gen-small.tsr"
"$tessera" run "$work/gen-small.tsr" --quiet
# BENCH_SCALE_REPEAT rounds (3 by default) of 1 worker, 2 workers and dask, alternating;
# the median of each.
scale_reps="${BENCH_SCALE_REPEAT:-3}"
declare -A t1 t2 td
for f in median loops; do
    a=() b=() c=()
    for ((k = 0; k < scale_reps; k++)); do
        a+=("$(run "$f-1" "zarr(\"$work/small.zarr\").map(python(\"$blocks:$f\")).write(\"$work/$f-1.zarr\", overwrite=true)" 1)")
        b+=("$(run "$f-2" "zarr(\"$work/small.zarr\").map(python(\"$blocks:$f\")).write(\"$work/$f-2.zarr\", overwrite=true)" 2)")
        rm -rf "$work/$f-dask.zarr"
        c+=("$(seconds "$py" bench/py/dask_blocks.py "$work/small.zarr" "$work/$f-dask.zarr" "$f" 2)")
    done
    t1[$f]=$(col 1 "${a[@]}") t2[$f]=$(col 1 "${b[@]}") td[$f]=$(col 1 "${c[@]}")
    "$py" bench/py/same.py "$work/$f-1.zarr" "$work/$f-dask.zarr"
    "$py" bench/py/same.py "$work/$f-2.zarr" "$work/$f-dask.zarr"
done

printf 'overhead, %d MiB u16, 2 workers:\n' "$mb"
printf '  x + 0                      %7.2f s   (median of %d)\n' "$t_native" "$reps"
printf '  x.map(python identity)     %7.2f s   %.2fx the native op (target <= 1.3x)\n' \
    "$t_ident" "$(echo "$t_ident / $t_native" | bc -l)"
printf 'CPU-heavy functions, %d planes of 1024 x 1024 u16 (medians of %d):\n' "$small" "$scale_reps"
for f in median loops; do
    printf '  %-7s 1 worker %7.2f s   2 workers %7.2f s   speed-up %.2fx (target >= 1.8x)   dask threads (2) %7.2f s   dask / tessera %.2fx\n' \
        "$f" "${t1[$f]}" "${t2[$f]}" "$(echo "${t1[$f]} / ${t2[$f]}" | bc -l)" "${td[$f]}" \
        "$(echo "${td[$f]} / ${t2[$f]}" | bc -l)"
done
