"""Check the benchmark tools' outputs against each other with zarr-python, chunk by chunk.

    python bench/verify.py add1|gaussian WORKDIR

Prints a one-line verdict; exits 1 with a message on stderr when the outputs disagree.
"""

import os
import sys

import numpy as np
import zarr


class Mismatch(Exception):
    pass


def verify(workload, d):
    """The one-line verdict for the outputs in directory d."""
    if workload == "add1":
        a = zarr.open_array(os.path.join(d, "out_tessera.zarr"), mode="r")
        b = zarr.open_array(os.path.join(d, "out_baseline.zarr"), mode="r")
        x = zarr.open_array(os.path.join(d, "in.zarr"), mode="r")
        if a.shape != b.shape or a.dtype != b.dtype or a.chunks != b.chunks:
            raise Mismatch(f"add1: outputs differ in metadata: tessera {a.shape} {a.dtype} {a.chunks}, "
                            f"baseline {b.shape} {b.dtype} {b.chunks}")
        for k in range(a.shape[0]):
            pa, pb = a[k], b[k]
            if not np.array_equal(pa, pb):
                i = np.argwhere(pa != pb)[0]
                raise Mismatch(f"add1: tessera and baseline outputs differ at [{k}, {i[0]}, {i[1]}]: "
                                f"{pa[tuple(i)]} vs {pb[tuple(i)]}")
            if not np.array_equal(pb, x[k] + np.uint16(1)):
                raise Mismatch(f"add1: baseline output plane {k} is not input + 1")
        return "tessera output == baseline output == input + 1 (every element)"
    a = zarr.open_array(os.path.join(d, "out_tessera.zarr"), mode="r")
    b = zarr.open_array(os.path.join(d, "out_dask.zarr"), mode="r")
    if a.shape != b.shape or a.dtype != b.dtype:
        raise Mismatch(f"gaussian: outputs differ: tessera {a.shape} {a.dtype}, dask {b.shape} {b.dtype}")
    rows = a.chunks[0]
    max_diff, differing = 0.0, 0
    for r0 in range(0, a.shape[0], rows):
        pa, pb = a[r0:r0 + rows], b[r0:r0 + rows]
        diff = np.abs(pa.astype(np.float64) - pb.astype(np.float64))
        max_diff = max(max_diff, float(diff.max()))
        differing += int((pa != pb).sum())
    if max_diff > 1e-3:
        raise Mismatch(f"gaussian: tessera and dask-image differ by up to {max_diff}")
    if differing == 0:
        return "tessera output == dask-image output (bit for bit)"
    return f"tessera vs dask-image: {differing} elements differ, max |diff| {max_diff:.3g}"


def main():
    workload, d = sys.argv[1], sys.argv[2]
    try:
        print(verify(workload, d))
    except Mismatch as e:
        print(e, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
