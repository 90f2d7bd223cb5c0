"""The dask-image side of the "gaussian" benchmark workload.

Reads a Zarr array lazily with dask, applies dask_image.ndfilters.gaussian_filter (scipy's
gaussian_filter on overlapping blocks: mode "reflect", truncate 4.0, float32 in and out) and
writes a new Zarr v3 array with the input's shape and chunks, zstd level 3, using dask's
threaded scheduler with a fixed number of workers. Prints `seconds=S` (compute+write only;
the benchmark runner measures the whole process).

    python bench/dask_gaussian.py --input in.zarr --output out.zarr --sigma 5 --workers 2
"""

import argparse
import time

import dask
import dask.array as da
import zarr
import zarr_out  # bench/zarr_out.py
from dask_image.ndfilters import gaussian_filter


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--sigma", type=float, default=5.0)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    start = time.perf_counter()
    src = zarr.open_array(args.input, mode="r")
    x = da.from_zarr(src)
    y = gaussian_filter(x, sigma=args.sigma)
    out = zarr_out.create(args.output, src.shape, src.chunks, src.dtype)
    with dask.config.set(scheduler="threads", num_workers=args.workers):
        da.store(y, out, lock=False)
    print(f"seconds={time.perf_counter() - start:.3f}")


if __name__ == "__main__":
    main()
