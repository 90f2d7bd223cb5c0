"""The dask side of the "regions" benchmark workload: parallel region writes with dask.

The pattern dask users write for per-region processing: one lazy dask array over the input
(da.from_zarr); for each region of rois.json, the region plus a halo of
int(truncate * sigma + 0.5) pixels per axis clipped to the array, cast to float32, the
clipped part restored by reflection (da.pad "symmetric" == scipy's "reflect"), as one
block, scipy.ndimage.gaussian_filter on it (map_blocks; mode "reflect", truncate 4.0),
cropped back to the region, and `da.to_zarr(block, out, region=region, compute=False)` into
a new zarr v3 float32 array (input's shape and chunks, zstd level 3, fill 0) created up
front. All the stores are computed together (`dask.compute(*stores)`) with the threaded
scheduler and a fixed number of workers, so input chunks shared by several regions are
decoded once.

Regions that share an output chunk are written by concurrent read-modify-write tasks
without a lock (da.to_zarr into an existing array uses lock=False), so updates can be lost;
the benchmark's output check counts the pixels that differ from the sequential loop.
Prints `seconds=S regions=N` (graph construction + compute, without interpreter start-up).

    python bench/regions_dask.py --input in.zarr --rois rois.json --output out.zarr --sigma 0,0,2,2 --workers 2
"""

import argparse
import time
import warnings

import dask
import dask.array as da
import numpy as np
import zarr
import zarr_out  # bench/zarr_out.py
from scipy.ndimage import gaussian_filter

import rois as roislib

TRUNCATE = 4.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", required=True)
    ap.add_argument("--rois", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--sigma", default="0,0,2,2")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    sigma = tuple(float(s) for s in args.sigma.split(","))
    halo = tuple(int(TRUNCATE * s + 0.5) for s in sigma)

    start = time.perf_counter()
    regions = roislib.load(args.rois)
    src = zarr.open_array(args.input, mode="r")
    x = da.from_zarr(src)
    out = zarr_out.create(args.output, src.shape, src.chunks, np.float32)
    stores = []
    with warnings.catch_warnings():
        # to_zarr warns that its write chunks are not multiples of the zarr chunks: that is
        # the data-loss risk the benchmark reports, not something to print per region.
        warnings.simplefilter("ignore")
        for roi in regions:
            read, pad, crop = roislib.halo_window(roi, src.shape, halo)
            block = x[read].astype(np.float32)
            if any(a or b for a, b in pad):
                block = da.pad(block, pad, mode="symmetric")
            block = block.rechunk(block.shape)
            y = block.map_blocks(gaussian_filter, sigma=sigma, mode="reflect", truncate=TRUNCATE,
                                 dtype=np.float32)
            stores.append(da.to_zarr(y[crop], out, region=roislib.region_slices(roi), compute=False))
        with dask.config.set(scheduler="threads", num_workers=args.workers):
            dask.compute(*stores)
    print(f"seconds={time.perf_counter() - start:.3f} regions={len(regions)}")


if __name__ == "__main__":
    main()
