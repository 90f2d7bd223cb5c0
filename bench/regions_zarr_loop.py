"""The zarr-python side of the "regions" benchmark workload: a sequential region loop.

For each region of rois.json (one at a time, in list order, in this one process): read the
region plus a halo of int(truncate * sigma + 0.5) pixels per axis, clipped to the array;
restore the clipped part by reflection (np.pad "symmetric", which is scipy's "reflect"), so
the result equals filtering the whole array; cast to float32; scipy.ndimage.gaussian_filter
(sigma per axis, mode "reflect", truncate 4.0); crop back to the region and assign it into a
new zarr v3 float32 array of the input's shape and chunks, zstd level 3, fill 0, created up
front. Later regions overwrite earlier ones where they overlap. Prints
`seconds=S regions=N` (the loop and the array creation, without interpreter start-up).

    python bench/regions_zarr_loop.py --input in.zarr --rois rois.json --output out.zarr --sigma 0,0,2,2
"""

import argparse
import time

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
    args = ap.parse_args()
    sigma = tuple(float(s) for s in args.sigma.split(","))
    halo = tuple(int(TRUNCATE * s + 0.5) for s in sigma)

    start = time.perf_counter()
    regions = roislib.load(args.rois)
    src = zarr.open_array(args.input, mode="r")
    out = zarr_out.create(args.output, src.shape, src.chunks, np.float32)
    for roi in regions:
        read, pad, crop = roislib.halo_window(roi, src.shape, halo)
        block = src[read].astype(np.float32)
        if any(a or b for a, b in pad):
            block = np.pad(block, pad, mode="symmetric")
        y = gaussian_filter(block, sigma=sigma, mode="reflect", truncate=TRUNCATE)
        out[roislib.region_slices(roi)] = y[crop]
    print(f"seconds={time.perf_counter() - start:.3f} regions={len(regions)}")


if __name__ == "__main__":
    main()
