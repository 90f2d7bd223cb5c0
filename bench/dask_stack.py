"""The dask side of the stack workloads (per-frame normalisation, means, rechunk + FFT).

Reads a u16 (t, y, x) Zarr stack lazily with dask, computes one of

    normalize  (x / x.max(axis=(1, 2), keepdims=True)).astype(float32), the input's chunks
    mean0      x.mean(axis=0)            float64 (y, x)
    mean12     x.mean(axis=(1, 2))       float64 (t,)
    fftpower   (abs(fft(x.rechunk((t, 16, 16)), axis=0)) ** 2).astype(float32)

and writes a new Zarr v3 array (zstd level 3) with dask's threaded scheduler and a fixed
number of workers. Prints `seconds=S` (the benchmark runner measures the whole process).

    python bench/dask_stack.py --op normalize --input in.zarr --output out.zarr --workers 2
"""

import argparse
import time

import dask
import dask.array as da
import numpy as np
import zarr
import zarr_out  # bench/zarr_out.py


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--op", required=True, choices=["normalize", "mean0", "mean12", "fftpower"])
    ap.add_argument("--input", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    start = time.perf_counter()
    src = zarr.open_array(args.input, mode="r")
    x = da.from_zarr(src)
    if args.op == "normalize":
        y = (x / x.max(axis=(1, 2), keepdims=True)).astype(np.float32)
    elif args.op == "mean0":
        y = x.mean(axis=0)
    elif args.op == "mean12":
        y = x.mean(axis=(1, 2))
    else:
        r = x.rechunk((x.shape[0], 16, 16))
        y = (abs(da.fft.fft(r, axis=0)) ** 2).astype(np.float32)
    chunks = tuple(c[0] for c in y.chunks)
    out = zarr_out.create(args.output, y.shape, chunks, y.dtype)
    with dask.config.set(scheduler="threads", num_workers=args.workers):
        da.store(y, out, lock=False)
    print(f"seconds={time.perf_counter() - start:.3f}")


if __name__ == "__main__":
    main()
