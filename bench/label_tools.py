"""The peers of the "label" benchmark workload: connected components of `x > 128`.

    python bench/label_tools.py dask  --input in.zarr --output out.zarr --workers 2
    python bench/label_tools.py scipy --input in.zarr --output out.zarr

`dask` runs dask_image.ndmeasure.label on the lazily read array (threaded scheduler, a fixed
number of workers) and stores the labels; `scipy` reads the whole array into memory, runs
scipy.ndimage.label and writes the labels. Both write a Zarr v3 int32 array with the input's
chunks, zstd level 3, and print `seconds=S count=N`.
"""

import argparse
import time

import numpy as np
import zarr
import zarr_out  # bench/zarr_out.py


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("tool", choices=["dask", "scipy"])
    ap.add_argument("--input", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    start = time.perf_counter()
    src = zarr.open_array(args.input, mode="r")
    out = zarr_out.create(args.output, src.shape, src.chunks, np.int32)
    if args.tool == "dask":
        import dask
        import dask.array as da
        from dask_image.ndmeasure import label

        x = da.from_zarr(src)
        labels, n = label(x > 128)
        with dask.config.set(scheduler="threads", num_workers=args.workers):
            labels = labels.astype(np.int32)
            _, count = da.compute(da.store(labels, out, lock=False, compute=False), n)
    else:
        from scipy.ndimage import label

        labels, count = label(src[...] > 128)
        out[...] = labels.astype(np.int32)
    print(f"seconds={time.perf_counter() - start:.3f} count={int(count)}")


if __name__ == "__main__":
    main()
