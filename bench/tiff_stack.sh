#!/usr/bin/env bash
# TIFF stack to Zarr: 1,000 files of 512x512 uint16 written by tifffile, converted by
# `tessera run` (`tiff("frames/*.tif").write("out.zarr")`) and by dask-image
# (`dask_image.imread.imread("frames/*.tif").to_zarr(...)`, threaded scheduler), both with
# 2 workers and zstd level 3 (zarr-python's default codec for v3 arrays). Prints both wall
# times (best of --repeat runs, outputs deleted before each) and the ratio; the outputs are
# compared with zarr-python. Tessera's time is the whole process; dask's is the
# conversion alone, imports and interpreter start left out.
#
# Usage: bench/tiff_stack.sh [--files N] [--repeat R] [--workers W]
# Needs: cargo, the venv of scripts/python-env.sh ($TESSERA_PYTHON to use another python).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
files=1000
repeat=2
workers=2
while [[ $# -gt 0 ]]; do
    case "$1" in
        --files) files="$2"; shift 2 ;;
        --repeat) repeat="$2"; shift 2 ;;
        --workers) workers="$2"; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
target="${CARGO_TARGET_DIR:-$repo/target}"
(cd "$repo" && cargo build --release --quiet --bin tessera)
bin="$target/release/tessera"
py="${TESSERA_PYTHON:-}"
if [[ -z "$py" ]]; then
    py="$("$repo/scripts/python-env.sh" | tail -n 1)"
fi

work="$repo/bench/work/tiff-stack-$files"
mkdir -p "$work"
if [[ ! -f "$work/frames.done" ]]; then
    echo "writing $files TIFF files with tifffile into $work/frames" >&2
    rm -rf "$work/frames"
    "$py" - "$work/frames" "$files" <<'PY'
import os, sys
import numpy as np, tifffile
out, n = sys.argv[1], int(sys.argv[2])
os.makedirs(out)
rng = np.random.default_rng(1)
y, x = np.mgrid[0:512, 0:512]
for i in range(n):
    # A smooth, drifting background with shot noise: compresses like microscopy frames.
    base = 2000 + 800 * np.sin((x + 3 * i) / 40.0) * np.cos((y - 2 * i) / 55.0)
    frame = rng.poisson(np.clip(base, 0, None)).astype(np.uint16)
    tifffile.imwrite(f"{out}/frame_{i:04d}.tif", frame)
PY
    touch "$work/frames.done"
fi

cd "$work"
cat > convert.tsr <<'TSR'
tiff("frames/*.tif").write("tessera.zarr", codec="zstd", level=3)
TSR
cat > dask_convert.py <<'PY'
import sys, time
import dask, zarr
import dask_image.imread
workers = int(sys.argv[1])
t0 = time.perf_counter()
with dask.config.set(scheduler="threads", num_workers=workers):
    a = dask_image.imread.imread("frames/*.tif")
    codec = zarr.codecs.ZstdCodec(level=3)
    z = zarr.create_array("dask.zarr", shape=a.shape, chunks=a.chunksize, dtype=a.dtype,
                          compressors=[codec], fill_value=0)
    a.to_zarr(z)
print(f"{time.perf_counter() - t0:.3f}")
PY

best() { sort -n | head -n 1; }
tessera_times=()
dask_times=()
for ((r = 0; r < repeat; r++)); do
    rm -rf tessera.zarr tessera.zarr.tessera-lock
    s=$(date +%s.%N)
    "$bin" run convert.tsr --workers "$workers" --quiet
    e=$(date +%s.%N)
    tessera_times+=("$(echo "$e - $s" | bc)")
    rm -rf dask.zarr
    dask_times+=("$("$py" dask_convert.py "$workers")")
done
"$py" - <<'PY'
import glob, numpy as np, tifffile, zarr
t = zarr.open_array("tessera.zarr", mode="r")
d = zarr.open_array("dask.zarr", mode="r")
assert t.shape == d.shape and t.dtype == d.dtype, (t.shape, d.shape, t.dtype, d.dtype)
assert t.chunks == d.chunks, (t.chunks, d.chunks)
files = sorted(glob.glob("frames/*.tif"))
for i in (0, len(files) // 2, len(files) - 1):
    assert np.array_equal(t[i], tifffile.imread(files[i])), files[i]
assert np.array_equal(t[...], d[...]), "outputs differ"
PY
tt=$(printf '%s\n' "${tessera_times[@]}" | best)
dt=$(printf '%s\n' "${dask_times[@]}" | best)
echo "tiff stack: $files files of 512x512 uint16, $workers workers, best of $repeat"
echo "  tessera run          $(printf '%.3f' "$tt") s   (runs: ${tessera_times[*]})"
echo "  dask_image + to_zarr $(printf '%.3f' "$dt") s   (runs: ${dask_times[*]})"
echo "  ratio (dask / tessera) $(echo "scale=2; $dt / $tt" | bc)x"
