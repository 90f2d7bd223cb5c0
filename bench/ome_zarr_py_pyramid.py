"""ome-zarr-py's side of bench/ome_pyramid.sh, and the checks of both pyramids.

    python bench/ome_zarr_py_pyramid.py write IN OUT --chunks 16,512,512 [--levels 5] [--workers 2] [--method local_mean]
    python bench/ome_zarr_py_pyramid.py verify IN TESSERA_L0 TESSERA_PYRAMID PY_PYRAMID --levels 5

`write` opens the plain Zarr v3 array IN with dask (`da.from_zarr`, the stored chunks) and
calls `ome_zarr.writer.write_image` (ome-zarr-py 0.18) on it with the dask threaded
scheduler: axes "zyx", the method closest to Tessera's `write_ome` (`Methods.LOCAL_MEAN`,
skimage's `downscale_local_mean` cast back to the dtype, i.e. a truncating mean of 2x2x2
blocks), absolute scale factors 2, 4, ... on z, y and x (ome-zarr-py's default, integer
factors, leaves z alone; Tessera halves every space axis), and per level the given chunks
clipped to the level's shape (as Tessera clips them) with zstd level 3 (Tessera's default
codec). Prints one JSON line with the seconds spent inside `write_image`.

`verify` checks that level 0 of Tessera's pyramid equals IN (decoded, and chunk files byte
for byte) and equals Tessera's level-0-only image, that every level of Tessera's pyramid
has ome-zarr-py's shape and values and is the truncated 2x2x2 block mean of the level above,
and prints one line per level. It works in slabs of planes so it never holds a whole level.
"""

import argparse
import hashlib
import json
import os
import sys
import time


def level_shapes(shape, levels, axes):
    out = [tuple(shape)]
    for _ in range(1, levels):
        out.append(tuple(n // 2 if a in "zyx" else n for n, a in zip(out[-1], axes)))
    return out


def write(args):
    import dask
    import dask.array as da
    import zarr
    from ome_zarr.scale import Methods
    from ome_zarr.writer import write_image
    from zarr.codecs import ZstdCodec

    dask.config.set(scheduler="threads", num_workers=args.workers)
    src = zarr.open_array(args.input, mode="r")
    x = da.from_zarr(src)
    chunks = tuple(int(c) for c in args.chunks.split(","))
    if x.chunksize != chunks:
        x = x.rechunk(chunks)
    axes = args.axes
    factors = [{a: 2**k for a in axes if a in "zyx"} for k in range(1, args.levels)]
    storage = [
        dict(chunks=tuple(min(c, n) for c, n in zip(chunks, s)), compressors=[ZstdCodec(level=3)])
        for s in level_shapes(x.shape, args.levels, axes)
    ]
    t0 = time.perf_counter()
    write_image(
        image=x,
        group=zarr.open_group(args.output, mode="w"),
        axes=axes,
        scale_factors=factors,
        method=Methods(args.method),
        storage_options=storage,
    )
    print(json.dumps({"write_image_s": round(time.perf_counter() - t0, 3)}))


def chunk_digests(path):
    """sha256 of every chunk file of a Zarr v3 array (default chunk key encoding)."""
    out = {}
    base = os.path.join(path, "c")
    for root, _, files in os.walk(base):
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, base)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def block_mean(a):
    """Truncating mean of 2x2x2 blocks (every axis even), as downscale_local_mean + astype."""
    z, y, x = a.shape
    m = a.reshape(z // 2, 2, y // 2, 2, x // 2, 2).mean(axis=(1, 3, 5))
    return m.astype(a.dtype)


def verify(args):
    import numpy as np
    import zarr

    problems = []
    src = zarr.open_array(args.input, mode="r")
    tl0 = zarr.open_array(os.path.join(args.tessera_l0, "0"), mode="r")
    tp = [zarr.open_array(os.path.join(args.tessera, str(k)), mode="r") for k in range(args.levels)]
    pyg = zarr.open_group(args.py, mode="r")
    pp = [pyg[f"s{k}"] for k in range(args.levels)]
    want = level_shapes(src.shape, args.levels, "zyx")
    slab = src.chunks[0]
    for k in range(args.levels):
        t, p = tp[k], pp[k]
        line = f"level {k}: tessera {t.shape} chunks {t.chunks}, ome-zarr-py {p.shape} chunks {p.chunks}"
        if t.shape != want[k] or p.shape != want[k]:
            problems.append(f"level {k}: shapes tessera {t.shape} ome-zarr-py {p.shape}, want {want[k]}")
        if t.dtype != p.dtype or t.dtype != src.dtype:
            problems.append(f"level {k}: dtypes tessera {t.dtype} ome-zarr-py {p.dtype}")
        diff_py = diff_mean = 0
        maxdiff = 0
        for z0 in range(0, t.shape[0], slab):
            z1 = min(z0 + slab, t.shape[0])
            a = t[z0:z1]
            if k == 0:
                if not np.array_equal(a, src[z0:z1]):
                    problems.append(f"level 0 differs from the input in planes {z0}:{z1}")
                if not np.array_equal(a, tl0[z0:z1]):
                    problems.append(f"level 0 differs from the level-0-only image in planes {z0}:{z1}")
            else:
                up = tp[k - 1][2 * z0 : 2 * z1]
                diff_mean += int(np.count_nonzero(a != block_mean(up)))
            if t.shape == p.shape:
                b = p[z0:z1]
                d = a != b
                diff_py += int(np.count_nonzero(d))
                if d.any():
                    maxdiff = max(maxdiff, int(np.abs(a.astype(np.int64) - b.astype(np.int64)).max()))
        if diff_py:
            problems.append(f"level {k}: {diff_py} elements differ from ome-zarr-py (max |diff| {maxdiff})")
        if diff_mean:
            problems.append(f"level {k}: {diff_mean} elements differ from the truncated 2x2x2 mean of level {k - 1}")
        line += f"; differs from ome-zarr-py in {diff_py} elements"
        if k > 0:
            line += f", from the block mean of level {k - 1} in {diff_mean}"
        print(line)
    same = chunk_digests(args.input) == chunk_digests(os.path.join(args.tessera, "0"))
    print(f"level 0 chunk files byte for byte equal to the input's: {same}")
    if not same:
        problems.append("level 0 chunk files are not byte for byte the input's")
    same_l0 = chunk_digests(os.path.join(args.tessera_l0, "0")) == chunk_digests(os.path.join(args.tessera, "0"))
    print(f"level 0 chunk files equal to the level-0-only image's: {same_l0}")
    if not same_l0:
        problems.append("level 0 chunk files differ from the level-0-only image's")
    for name, g in (("tessera", zarr.open_group(args.tessera, mode="r")), ("ome-zarr-py", pyg)):
        ms = g.attrs["ome"]["multiscales"][0]
        scales = [d["coordinateTransformations"][0]["scale"] for d in ms["datasets"]]
        print(f"{name} multiscales: paths {[d['path'] for d in ms['datasets']]} scales {scales}")
    if problems:
        sys.exit("verify: " + "; ".join(problems))
    print("verify: ok")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write")
    w.add_argument("input")
    w.add_argument("output")
    w.add_argument("--chunks", required=True, help="z,y,x chunk shape of every level")
    w.add_argument("--levels", type=int, default=5)
    w.add_argument("--axes", default="zyx")
    w.add_argument("--workers", type=int, default=2)
    w.add_argument(
        "--method",
        default="local_mean",
        help="ome_zarr.scale.Methods value (default local_mean, Tessera's mean; write_image's own default is resize)",
    )
    v = sub.add_parser("verify")
    v.add_argument("input")
    v.add_argument("tessera_l0")
    v.add_argument("tessera")
    v.add_argument("py")
    v.add_argument("--levels", type=int, default=5)
    args = ap.parse_args()
    write(args) if args.cmd == "write" else verify(args)


if __name__ == "__main__":
    main()
