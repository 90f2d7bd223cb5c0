#!/usr/bin/env python3
"""Tessera's oracle fixtures: arrays written by zarr-python and references computed by
numpy / scipy.ndimage, which the integration tests compare Tessera against.

    python tests/oracle/generate.py [--out DIR] [--force]

Writes DIR (default <repo>/target/oracle-fixtures): `manifest.json` (every array: path,
category, role, dtype, shape, chunks, call, params, checksum) and five directories:

  interop/     zarr-python stores in many formats, each with NAME.expected.json
               (metadata, checksum, first ten values, missing chunk indices)
  filters/     three inputs and one scipy.ndimage reference per (input, operation)
  reductions/  a uint16 volume, vol_u16.reductions.json (numpy axis reductions) and
               array references (broadcasts, slices, transposes, FFT power)
  label/       binary masks and scipy.ndimage.label references (two connectivities)
  rois/        an image, rois.json / rois_bad.json and region-write references

Deterministic: every input comes from its own PCG64 stream (fixed seed) through integer
and uniform draws and IEEE + - * / only, so it is the same on every machine. Every
reference is computed from the input as re-read from its store. Idempotent: DIR/.stamp
records the SHA-256 of this file and the library versions; when it matches and every
listed array exists the run does nothing. A new set is built beside DIR and swapped in,
so an interrupted run never leaves a half-written set behind.
"""

import argparse
import hashlib
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

import numcodecs
import numpy as np
import scipy
import scipy.ndimage as ndi
import zarr
from zarr.codecs import BytesCodec, GzipCodec, ZstdCodec

SEED = 72_411
SCRIPT = Path(__file__).resolve()
REPO = SCRIPT.parents[2]


def versions():
    return {
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "zarr": zarr.__version__,
        "numcodecs": numcodecs.__version__,
    }


def rng(stream):
    """An independent generator per fixture, so changing one leaves the others alone."""
    return np.random.Generator(np.random.PCG64([SEED, stream]))


# ------------------------------------------------------------------ numbers as text


def num_text(v, dtype):
    """Exact text of one value: integers as integers, floats as the shortest repr of
    the float64 value (a float32 is widened exactly first)."""
    if np.dtype(dtype).kind in "iub":
        return str(int(v))
    f = float(v)
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "inf" if f > 0 else "-inf"
    return repr(f)


def checksum(a):
    """Checksums over the logical array in C order (NaN skipped): `sum` and `wsum` (each
    value times (i mod 1009) + 1) accumulated left to right in float64, min, max, NaN
    count and SHA-256 of the little-endian C-order bytes."""
    flat = np.ascontiguousarray(a).reshape(-1)
    v = flat.astype(np.float64)
    weights = (np.arange(v.size) % 1009 + 1).astype(np.float64)
    keep = ~np.isnan(v)
    kept = v[keep]
    seq = lambda x: float(np.cumsum(x)[-1]) if x.size else 0.0  # noqa: E731
    le = flat.astype(flat.dtype.newbyteorder("<"), copy=False)
    out = {
        "sum": repr(seq(kept)),
        "wsum": repr(seq(kept * weights[keep])),
        "min": num_text(flat[keep].min(), a.dtype) if kept.size else "NaN",
        "max": num_text(flat[keep].max(), a.dtype) if kept.size else "NaN",
        "nan_count": int((~keep).sum()),
        "sha256_c_le": hashlib.sha256(le.tobytes()).hexdigest(),
    }
    return out


# ------------------------------------------------------------------ stores


class Fixtures:
    def __init__(self, root):
        self.root = root
        self.entries = []

    def path(self, rel):
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def plain(self, rel, data, chunks=None, **entry):
        """zarr v3, bytes(little) only, fill 0, '.' chunk keys, every chunk written."""
        chunks = tuple(chunks or data.shape)
        a = zarr.create_array(
            str(self.path(rel)),
            shape=data.shape,
            chunks=chunks,
            dtype=data.dtype,
            compressors=None,
            filters=None,
            fill_value=0,
            zarr_format=3,
            chunk_key_encoding={"name": "default", "separator": "."},
            config={"write_empty_chunks": True},
        )
        a[...] = data
        back = self.reread(rel, data)
        self.record(rel, back, chunks, format="v3: bytes(little), no compressor, '.' chunk keys, fill 0", **entry)
        return back

    def reread(self, rel, data):
        back = zarr.open_array(str(self.root / rel), mode="r")[...]
        assert back.dtype == data.dtype and back.shape == data.shape, rel
        assert np.array_equal(back, data, equal_nan=data.dtype.kind == "f"), rel
        return back

    def record(self, rel, data, chunks, **entry):
        e = {
            "path": rel,
            "dtype": str(data.dtype),
            "shape": list(data.shape),
            "chunks": list(chunks),
        }
        e.update(entry)
        e["checksum"] = checksum(data)
        self.entries.append(e)

    def json(self, rel, doc):
        self.path(rel).write_text(json.dumps(doc, indent=1) + "\n")


# ------------------------------------------------------------------ content


def grid(shape):
    return np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij")


def bumps(g, shape, count, amp_lo, amp_hi, width_lo, width_hi):
    """Sum of `count` rational bumps a / (1 + r^2 / s^2) (only + - * /)."""
    coords = grid(shape)
    out = np.zeros(shape)
    for _ in range(count):
        centre = [g.uniform(0, n) for n in shape]
        a = g.uniform(amp_lo, amp_hi)
        s = g.uniform(width_lo, width_hi)
        r2 = sum((c - m) * (c - m) for c, m in zip(coords, centre))
        out += a / (1.0 + r2 / (s * s))
    return out


def staircase(g, dtype, shape):
    """C-order staircase across the whole dtype range (a step every 8 elements), noise
    0..7 on about a fifth of the elements, the dtype's max at flat 1 and min at n // 2."""
    info = np.iinfo(dtype)
    n = int(np.prod(shape))
    steps = np.arange(n, dtype=np.int64) // 8
    span = int(info.max) - int(info.min)
    v = int(info.min) + steps * (span // int(max(steps[-1], 1)))
    noisy = g.random(n) < 0.2
    v = v + np.where(noisy, g.integers(0, 8, n), 0)
    v = np.clip(v, int(info.min), int(info.max))
    v[1] = info.max
    v[n // 2] = info.min
    return v.astype(dtype).reshape(shape)


def smooth(g, dtype, shape, quantum):
    """Bumps plus noise, quantised to multiples of `quantum` (exact in the dtype, so the
    checksums' float64 sums are exact)."""
    v = bumps(g, shape, 4, -60.0, 90.0, 3.0, 12.0) + g.uniform(-1.0, 1.0, shape)
    return (np.round(v / quantum) * quantum).astype(dtype)


# ------------------------------------------------------------------ interop


def interop(fx):
    blosc = numcodecs.Blosc
    cases = [
        # name, shape, chunks, dtype, format, kwargs, content
        ("v3_zstd_u16_3d", (12, 20, 24), (8, 16, 16), "uint16", 3,
         dict(compressors=ZstdCodec(level=3), fill_value=0), "stairs"),
        ("v3_sharded_zstd_f32_2d", (40, 52), (16, 16), "float32", 3,
         dict(shards=(32, 32), compressors=ZstdCodec(level=3), fill_value=0.0), "smooth"),
        ("v3_gzip_i32_2d", (45, 37), (32, 32), "int32", 3,
         dict(compressors=GzipCodec(level=5), fill_value=0), "stairs"),
        ("v3_raw_bigendian_f64_2d", (43, 50), (32, 32), "float64", 3,
         dict(serializer=BytesCodec(endian="big"), compressors=None, fill_value=0.0), "smooth"),
        ("v3_missing_fill_i16_2d", (45, 60), (32, 32), "int16", 3,
         dict(compressors=ZstdCodec(level=3), fill_value=7), "ramp"),
        ("v2_blosc_lz4_shuffle_i32_2d", (50, 41), (32, 32), "int32", 2,
         dict(filters=None, compressors=blosc(cname="lz4", clevel=5, shuffle=blosc.SHUFFLE), fill_value=0),
         "stairs"),
        ("v2_blosc_zstd_bitshuffle_f64_2d", (37, 44), (32, 32), "float64", 2,
         dict(filters=None, compressors=blosc(cname="zstd", clevel=5, shuffle=blosc.BITSHUFFLE), fill_value=0.0),
         "smooth"),
        ("v2_zstd_u8_2d", (47, 53), (32, 32), "uint8", 2,
         dict(filters=None, compressors=numcodecs.Zstd(level=3), fill_value=0), "stairs"),
        ("v2_gzip_i16_2d", (42, 39), (32, 32), "int16", 2,
         dict(filters=None, compressors=numcodecs.GZip(level=5), fill_value=0), "stairs"),
        ("v2_orderF_f32_2d", (41, 46), (32, 32), "float32", 2,
         dict(filters=None, compressors=None, order="F", fill_value=0.0), "rowcol"),
        ("v2_nanfill_f32_2d", (44, 50), (32, 32), "float32", 2,
         dict(filters=None, compressors=numcodecs.Zstd(level=3), fill_value=np.nan), "smooth"),
    ]
    partial = {"v3_missing_fill_i16_2d": [(0, 1), (1, 0)], "v2_nanfill_f32_2d": [(0, 0), (1, 1)]}
    for k, (name, shape, chunks, dtype, fmt, kw, content) in enumerate(cases):
        g = rng(100 + k)
        if content == "stairs":
            data = staircase(g, dtype, shape)
        elif content == "smooth":
            data = smooth(g, dtype, shape, 2.0**-6 if dtype == "float32" else 2.0**-10)
        elif content == "ramp":
            i, j = np.indices(shape)
            data = (20 * i - 15 * j + g.integers(-4, 5, shape)).astype(dtype)
        else:  # rowcol: 1000 i + j + k / 4, so a transposed read is obvious
            i, j = np.indices(shape)
            data = (1000 * i + j + g.integers(0, 4, shape) / 4).astype(dtype)
        rel = f"interop/{name}.zarr"
        a = zarr.create_array(str(fx.path(rel)), shape=shape, chunks=chunks, dtype=dtype, zarr_format=fmt, **kw)
        grid_shape = [math.ceil(s / c) for s, c in zip(shape, kw.get("shards", chunks))]
        written = partial.get(name)
        if written is None:
            a[...] = data
        else:
            for idx in written:
                sl = tuple(slice(i * c, min((i + 1) * c, s)) for i, c, s in zip(idx, chunks, shape))
                a[sl] = data[sl]
        back = zarr.open_array(str(fx.root / rel), mode="r")[...]
        fill = kw["fill_value"]
        if written is not None:
            expected = np.full(shape, fill, dtype=dtype)
            for idx in written:
                sl = tuple(slice(i * c, min((i + 1) * c, s)) for i, c, s in zip(idx, chunks, shape))
                expected[sl] = data[sl]
            data = expected
        assert np.array_equal(back, data, equal_nan=True), name
        doc = {
            "zarr_format": fmt,
            "shape": list(shape),
            "dtype": str(np.dtype(dtype)),
            "chunks": list(kw.get("shards", chunks)),
            "fill_value": num_text(fill, dtype),
            "checksum": checksum(back),
            "first10_c_order": [num_text(v, dtype) for v in back.reshape(-1)[:10]],
        }
        if "shards" in kw:
            doc["inner_chunks"] = list(chunks)
        if written is not None:
            every = [list(i) for i in np.ndindex(*grid_shape)]
            doc["written_chunks"] = [list(i) for i in written]
            doc["missing_chunks"] = [i for i in every if tuple(i) not in written]
        if content in ("stairs", "smooth", "ramp", "rowcol"):
            # Integers and quantised floats: the left-to-right sums are the exact sums.
            v = back.reshape(-1).astype(np.float64)
            v = v[~np.isnan(v)]
            assert doc["checksum"]["sum"] == repr(math.fsum(v)), name
        fx.json(f"interop/{name}.expected.json", doc)
        fx.record(rel, back, doc["chunks"], category="interop", role="interop", producer="zarr-python",
                  format=f"zarr v{fmt}", params={"kwargs": sorted(kw)})


# ------------------------------------------------------------------ filters

FILTER_OPS = []
for sigma in (1.5, 3.0):
    for mode in ("reflect", "mirror", "nearest", "wrap", "constant"):
        FILTER_OPS.append((f"gaussian_s{sigma:g}_{mode}", dict(
            op="gaussian_filter", sigma=sigma, mode=mode, cval=0.0, truncate=4.0,
            radius=int(4.0 * sigma + 0.5))))
FILTER_OPS += [
    ("uniform_5", dict(op="uniform_filter", size=5, mode="reflect")),
    ("median_3", dict(op="median_filter", size=3, mode="reflect")),
    ("median_5", dict(op="median_filter", size=5, mode="reflect")),
    ("minimum_3", dict(op="minimum_filter", size=3, mode="reflect")),
    ("maximum_3", dict(op="maximum_filter", size=3, mode="reflect")),
    ("sobel_axis0", dict(op="sobel", axis=0, mode="reflect")),
    ("sobel_axis-1", dict(op="sobel", axis=-1, mode="reflect")),
    ("laplace", dict(op="laplace", mode="reflect")),
    ("ggm_s2", dict(op="gaussian_gradient_magnitude", sigma=2.0, mode="reflect", truncate=4.0, radius=8)),
]


def apply_filter(x, p):
    op = p["op"]
    if op == "gaussian_filter":
        return ndi.gaussian_filter(x, sigma=p["sigma"], mode=p["mode"], cval=p["cval"], truncate=p["truncate"])
    if op == "gaussian_gradient_magnitude":
        return ndi.gaussian_gradient_magnitude(x, sigma=p["sigma"], mode=p["mode"], truncate=p["truncate"])
    if op in ("sobel",):
        return ndi.sobel(x, axis=p["axis"], mode=p["mode"])
    if op == "laplace":
        return ndi.laplace(x, mode=p["mode"])
    return getattr(ndi, op)(x, size=p["size"], mode=p["mode"])


def call_text(p):
    args = ", ".join(f"{k}={v!r}" for k, v in p.items() if k not in ("op", "radius"))
    return f"scipy.ndimage.{p['op']}(x, {args})"


def disc(shape, centre, radius):
    coords = grid(shape)
    return sum((c - m) * (c - m) for c, m in zip(coords, centre)) <= radius * radius


def filter_inputs():
    g = rng(200)
    f2 = bumps(g, (57, 70), 5, -2.0, 3.0, 2.0, 9.0) + g.uniform(-0.1, 0.1, (57, 70))
    g = rng(201)
    u = bumps(g, (48, 66), 2, 60.0, 120.0, 4.0, 10.0) + 40.0 + g.integers(-25, 26, (48, 66))
    u[disc((48, 66), (12.0, 50.0), 6.0)] = 255
    u[disc((48, 66), (36.0, 20.0), 5.0)] = 240
    u[30:40, 40:58] = 0
    g = rng(202)
    v3 = bumps(g, (12, 20, 24), 4, -1.5, 2.5, 2.0, 7.0) + g.uniform(-0.15, 0.15, (12, 20, 24))
    return [
        ("img2d_f32", f2.astype(np.float32), (32, 40)),
        ("img2d_u8", np.clip(u, 0, 255).astype(np.uint8), (32, 40)),
        ("vol3d_f32", v3.astype(np.float32), (8, 16, 16)),
    ]


def filters(fx):
    for name, data, chunks in filter_inputs():
        rel = f"filters/{name}.zarr"
        x = fx.plain(rel, data, chunks, category="filters", role="input", producer="numpy")
        for suffix, p in FILTER_OPS:
            y = apply_filter(x, p)
            assert y.dtype == x.dtype
            fx.plain(f"filters/{name}.{suffix}.zarr", y, category="filters", role="output",
                     producer=f"scipy {scipy.__version__}", call=call_text(p), params=p, inputs=[rel])


# ------------------------------------------------------------------ reductions


# Array references of reductions/, by store suffix: (call, function of the input).
REDUCTION_ARRAYS = {
    "div_max_axes12": ("x / x.max(axis=(1, 2), keepdims=True)", lambda x: x / x.max(axis=(1, 2), keepdims=True)),
    "center_f32_minus_mean_axis0": ("x.astype('float32') - x.mean(axis=0)",
                                    lambda x: x.astype(np.float32) - x.mean(axis=0)),
    "slice": ("x[:, ::2, 3:-2]", lambda x: np.ascontiguousarray(x[:, ::2, 3:-2])),
    "transpose_201": ("x.transpose(2, 0, 1)", lambda x: np.ascontiguousarray(x.transpose(2, 0, 1))),
    "power_fft_axis0": ("(np.abs(np.fft.fft(x, axis=0)) ** 2).astype('float32')",
                        lambda x: (np.abs(np.fft.fft(x, axis=0)) ** 2).astype(np.float32)),
}


def reduction_results(x):
    """numpy's axis reductions of `x`, values as exact text."""
    results = {}
    for op in ("sum", "mean", "min", "max", "std"):
        for tag, axis in (("axis0", 0), ("axes12", (1, 2)), ("all", None)):
            r = np.asarray(getattr(np, op)(x, axis=axis))
            results[f"{op}_{tag}"] = {
                "call": f"np.{op}(x, axis={axis!r})" if axis is not None else f"np.{op}(x)",
                "dtype": str(r.dtype),
                "shape": list(r.shape),
                "values_c_order": [num_text(e, r.dtype) for e in r.reshape(-1)],
            }
    return results


def reductions(fx):
    shape = (11, 21, 26)
    g = rng(300)
    v = bumps(g, shape, 2, 20000.0, 42000.0, 3.0, 8.0) + 2000.0 + g.integers(0, 12000, shape)
    v = np.clip(v, 0, 65535).astype(np.uint16)
    v[0, 0, 0] = 0
    v[7, 13, 5] = 65535
    x = fx.plain("reductions/vol_u16.zarr", v, (8, 16, 16), category="reductions", role="input", producer="numpy")
    results = reduction_results(x)
    fx.json("reductions/vol_u16.reductions.json", {"input": "reductions/vol_u16.zarr", "results": results})
    for suffix, (call, f) in REDUCTION_ARRAYS.items():
        if suffix == "power_fft_axis0":
            continue
        fx.plain(f"reductions/vol_u16.{suffix}.zarr", f(x), category="reductions", role="output",
                 producer=f"numpy {np.__version__}", call=call, inputs=["reductions/vol_u16.zarr"])
    g = rng(301)
    n = 12
    tri = np.abs((np.arange(n) % 4) - 2.0)  # a triangle wave of period n / 3 along axis 0
    f = tri[:, None, None] * (1.0 + g.uniform(0.0, 1.0, (1, 10, 8))) + g.uniform(-0.2, 0.2, (n, 10, 8))
    x = fx.plain("reductions/fft_in_f32.zarr", f.astype(np.float32), (8, 10, 8), category="reductions",
                 role="input", producer="numpy")
    call, f = REDUCTION_ARRAYS["power_fft_axis0"]
    fx.plain("reductions/fft_in_f32.power_fft_axis0.zarr", f(x), category="reductions", role="output",
             producer=f"numpy {np.__version__}", call=call, inputs=["reductions/fft_in_f32.zarr"])


# ------------------------------------------------------------------ label


def place(mask, feature):
    """Add `feature`, which must stay one background pixel away (in every direction)
    from everything already placed."""
    full = np.ones((3,) * mask.ndim, dtype=bool)
    if (ndi.binary_dilation(feature, structure=full) & mask).any():
        return False
    mask |= feature
    return True


def points(shape, pts):
    m = np.zeros(shape, dtype=bool)
    for p in pts:
        m[tuple(p)] = True
    return m


def mask_2d():
    shape = (56, 60)  # chunks 32 x 32: borders after row 31 and column 31
    m = np.zeros(shape, dtype=bool)
    fixed = [
        points(shape, [(31, 31), (32, 32)]),  # diagonal pair at the four-chunk corner
        points(shape, [(2, 2), (2, 3), (3, 2), (3, 3), (4, 4), (4, 5), (5, 4), (5, 5)]),  # squares at a corner
        points(shape, [(8 + k, 44 + k) for k in range(6)]),  # diagonal staircase
        points(shape, [(40 + k, 12 - k) for k in range(5)]),  # anti-diagonal
        points(shape, [(44, 31), (45, 32)]),  # diagonal pair across the column border
        disc(shape, (32.0, 20.0), 3.5),  # disc across the row border
        disc(shape, (14.0, 32.0), 5.0) & ~disc(shape, (14.0, 32.0), 2.5),  # ring across the column border
        disc(shape, (54.0, 52.0), 5.0),  # disc cut by the image border
    ]
    for f in fixed:
        assert place(m, f)
    g = rng(400)
    placed = 0
    while placed < 14:
        f = disc(shape, (g.integers(0, 56), g.integers(0, 60)), g.uniform(0.8, 3.0))
        placed += place(m, f)
    return m.astype(np.uint8)


def mask_3d():
    shape = (14, 22, 26)  # chunks 8 x 16 x 16
    m = np.zeros(shape, dtype=bool)
    fixed = [
        points(shape, [(7, 15, 15), (8, 16, 16)]),  # vertex pair at the eight-chunk corner
        points(shape, [(2, 2, 2), (2, 3, 3)]),  # edge-diagonal pair
        points(shape, [(4, 4, 20), (5, 5, 21), (6, 6, 22)]),  # vertex-diagonal chain
        points(shape, [(11, 4, 15), (11, 5, 16)]),  # edge-diagonal pair across the x border
        disc(shape, (8.0, 6.0, 8.0), 2.2),  # ball across the z border
        points(shape, [(3, y, 9) for y in range(11, 21)]),  # rod across the y border
        disc(shape, (12.0, 18.0, 24.0), 2.6),  # ball cut by the volume border
    ]
    for f in fixed:
        assert place(m, f)
    g = rng(401)
    placed = 0
    while placed < 8:
        f = disc(shape, tuple(g.integers(0, n) for n in shape), g.uniform(0.8, 2.2))
        placed += place(m, f)
    return m.astype(np.uint8)


def label_reference(x, suffix):
    """scipy's labels: default structure (`label_conn1`) or every neighbour (`label_full`)."""
    structure = np.ones((3,) * x.ndim, dtype=int) if suffix == "label_full" else None
    return ndi.label(x, structure=structure)


def label(fx):
    for name, mask, chunks in (("mask2d_u8", mask_2d(), (32, 32)), ("mask3d_u8", mask_3d(), (8, 16, 16))):
        rel = f"label/{name}.zarr"
        x = fx.plain(rel, mask, chunks, category="label", role="input", producer="numpy")
        counts = {}
        for suffix, text in (
            ("label_conn1", "scipy.ndimage.label(x)"),
            ("label_full", f"scipy.ndimage.label(x, structure=np.ones({(3,) * x.ndim}))"),
        ):
            labels, n = label_reference(x, suffix)
            assert labels.dtype == np.int32
            # Numbered in the order of each object's first pixel in a C-order scan.
            flat = labels.reshape(-1)
            firsts = [int(v) for v in flat[np.sort(np.unique(flat, return_index=True)[1])] if v]
            assert firsts == list(range(1, n + 1)), name
            fx.plain(f"label/{name}.{suffix}.zarr", labels, category="label", role="output",
                     producer=f"scipy {scipy.__version__}", call=text, inputs=[rel], params={"objects": int(n)})
            counts[suffix] = int(n)
        # The diagonal contacts make the connectivities differ.
        assert counts["label_conn1"] > counts["label_full"], counts


# ------------------------------------------------------------------ rois

ROIS = [  # (row, col), (height, width) on a 250 x 230 image in 64 x 64 chunks
    ((0, 0), (64, 64)),  # exactly one chunk
    ((70, 70), (20, 30)),
    ((100, 60), (10, 40)),  # shares chunk (1, 1) with #1
    ((128, 128), (1, 50)),  # one row
    ((200, 190), (50, 40)),  # reaches both array ends
    ((10, 140), (30, 20)),
    ((50, 165), (40, 30)),  # four chunks
    ((150, 10), (60, 8)),
    ((140, 90), (30, 30)),
    ((180, 90), (20, 20)),  # shares chunk (2, 1) with #8
    ((235, 0), (15, 60)),  # shares chunk (3, 0) with #7
    ((5, 70), (3, 3)),
]
BAD_ROI = 8, ((240, 100), (15, 10))  # runs 5 rows past the last row


def roi_reference(x, regions):
    """gaussian_filter(sigma=2) of the whole array, kept inside the regions, 0 outside."""
    full = ndi.gaussian_filter(x, sigma=2.0, mode="reflect", truncate=4.0)
    out = np.zeros(x.shape, dtype=full.dtype)
    for roi in regions:
        box = tuple(slice(o, o + n) for o, n in zip(roi["offset"], roi["shape"]))
        out[box] = full[box]
    return out


def rois(fx):
    shape = (250, 230)
    g = rng(500)
    v = bumps(g, shape, 6, 2000.0, 9000.0, 8.0, 40.0) + 500.0 + g.integers(0, 4000, shape)
    x = fx.plain("rois/img_u16.zarr", np.clip(v, 0, 65535).astype(np.uint16), (64, 64), category="rois",
                 role="input", producer="numpy")
    covered = np.zeros(shape, dtype=int)
    for (r, c), (h, w) in ROIS:
        assert r + h <= shape[0] and c + w <= shape[1]
        covered[r:r + h, c:c + w] += 1
    assert covered.max() == 1, "regions overlap"
    doc = [{"offset": list(o), "shape": list(s)} for o, s in ROIS]
    fx.json("rois/rois.json", doc)
    bad = list(doc)
    (r, c), (h, w) = BAD_ROI[1]
    assert r + h > shape[0]
    bad[BAD_ROI[0]] = {"offset": [r, c], "shape": [h, w]}
    fx.json("rois/rois_bad.json", bad)
    for suffix, src, text in (
        ("gaussian_s2_rois", x, "scipy.ndimage.gaussian_filter(x, sigma=2.0, mode='reflect', truncate=4.0)"),
        ("gaussian_s2_rois_f32", x.astype(np.float32),
         "scipy.ndimage.gaussian_filter(x.astype('float32'), sigma=2.0, mode='reflect', truncate=4.0)"),
    ):
        out = roi_reference(src, doc)
        fx.plain(f"rois/img_u16.{suffix}.zarr", out, category="rois", role="output",
                 producer=f"scipy {scipy.__version__}", call=f"g = {text}; out = 0 outside the regions, g inside",
                 inputs=["rois/img_u16.zarr", "rois/rois.json"])


# ------------------------------------------------------------------ cross-check


def crosscheck(root):
    """Recompute every reference of the fixture set at `root` (this generator's or
    another one's in the same layout) from its stored inputs with the calls above, and
    compare bit for bit. Returns the number of references checked."""
    manifest = json.loads((root / "manifest.json").read_text())
    read = lambda rel: zarr.open_array(str(root / rel), mode="r")[...]  # noqa: E731
    failures, checked = [], 0
    for e in manifest["fixtures"]:
        if e.get("role") != "output":
            continue
        path, cat = e["path"], e["category"]
        x = read(e["inputs"][0])
        if cat == "filters":
            got = apply_filter(x, e["params"])
        elif cat == "label":
            got = label_reference(x, path.split(".")[-2])[0]
        elif cat == "reductions":
            got = REDUCTION_ARRAYS[path.split(".")[-2]][1](x)
        elif cat == "rois":
            got = roi_reference(x.astype(np.float32) if path.endswith("_f32.zarr") else x,
                                json.loads((root / e["inputs"][1]).read_text()))
        else:
            failures.append(f"{path}: unknown category {cat}")
            continue
        want = read(path)
        if got.dtype != want.dtype or got.shape != want.shape:
            failures.append(f"{path}: {got.dtype} {got.shape} here, {want.dtype} {want.shape} stored")
        elif not np.array_equal(got, want, equal_nan=True):
            failures.append(f"{path}: {int((got != want).sum())} elements differ")
        checked += 1
    doc = json.loads((root / "reductions/vol_u16.reductions.json").read_text())
    mine = reduction_results(read("reductions/vol_u16.zarr"))
    for name, want in doc["results"].items():
        got = mine[name]
        same = got["dtype"] == want["dtype"] and list(got["shape"]) == list(want["shape"]) and [
            float(v) for v in got["values_c_order"]] == [float(v) for v in want["values_c_order"]]
        if not same:
            failures.append(f"reductions/vol_u16.reductions.json: {name} differs")
        checked += 1
    if failures:
        sys.exit(f"cross-check of {root} failed:\n" + "\n".join(failures))
    return checked


# ------------------------------------------------------------------ driver


def stamp_text():
    digest = hashlib.sha256(SCRIPT.read_bytes()).hexdigest()
    return json.dumps({"generator_sha256": digest, "versions": versions()}, sort_keys=True)


def up_to_date(out):
    try:
        if (out / ".stamp").read_text() != stamp_text():
            return False
        manifest = json.loads((out / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    return all((out / e["path"]).exists() for e in manifest["fixtures"])


def build(out):
    work = out.with_name(f"{out.name}.building-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    fx = Fixtures(work)
    for part in (interop, filters, reductions, label, rois):
        part(fx)
    manifest = {
        "generator": "tests/oracle/generate.py",
        "seed": SEED,
        "versions": versions(),
        "fixtures": fx.entries,
    }
    fx.json("manifest.json", manifest)
    (work / ".stamp").write_text(stamp_text())
    # Swap the finished set in; the old one is removed only after the new one is in place.
    old = out.with_name(f"{out.name}.old-{os.getpid()}")
    if out.exists():
        out.rename(old)
    work.rename(out)
    shutil.rmtree(old, ignore_errors=True)
    return len(fx.entries)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "target" / "oracle-fixtures")
    ap.add_argument("--force", action="store_true", help="rebuild even when up to date")
    ap.add_argument("--crosscheck", type=Path, metavar="SET",
                    help="recompute every reference of the fixture set SET and compare; write nothing")
    args = ap.parse_args()
    if args.crosscheck:
        n = crosscheck(args.crosscheck.resolve())
        print(f"cross-check: {n} references of {args.crosscheck} reproduced exactly", file=sys.stderr)
        return
    out = args.out.resolve()
    if not args.force and up_to_date(out):
        print(f"oracle fixtures up to date: {out}", file=sys.stderr)
        return
    started = time.monotonic()
    n = build(out)
    print(f"oracle fixtures: {n} arrays written to {out} in {time.monotonic() - started:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
