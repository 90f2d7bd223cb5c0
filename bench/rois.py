"""Regions of interest for the "regions" benchmark workload (standard library only).

The runner (bench/bench.py) imports this to write each workload directory's rois.json; the
reference tools (regions_zarr_loop.py, regions_dask.py) and bench/verify.py import it for
the halo arithmetic, so that every tool reads exactly the same regions and windows.

A region is a dict {"offset": [i0, ..., y, x], "shape": [1, ..., h, w]} (the format
Tessera's `rois(path)` reads): one index on every leading axis (e.g. t and c) and an
unaligned h x w box on the last two axes, h and w in 900..1100.

    python bench/rois.py SHAPE N [--chunks C] [--seed S]   # print the list and its statistics
"""

import itertools
import json
import random

SIZE_RANGE = (900, 1100)


def _overlaps(a, b):
    """Do two placed boxes (plane, y0, y1, x0, x1) intersect?"""
    return a[0] == b[0] and a[1] < b[2] and b[1] < a[2] and a[3] < b[4] and b[3] < a[4]


def make_rois(shape, n, chunks, seed=20261121):
    """A deterministic list of n regions inside an array of `shape` (>= 3 axes).

    - regions 0 and 1 touch the array's edges (top-left and bottom-right corners), so that
      the filter's reflection at the array boundary is exercised;
    - about one region in twelve (at least one) is an earlier region shifted by 250..600 px
      on each spatial axis: the overlapping ones (they follow the one they overlap, so
      "later wins" decides);
    - the others do not overlap anything; about 60 % of them are placed right next to an
      earlier region (gap 0..40 px), which makes them share the chunks along that seam,
      the rest anywhere at random;
    - no non-edge region starts on a chunk boundary (all unaligned).
    """
    rng = random.Random(seed)
    lead, (H, W) = tuple(shape[:-2]), tuple(shape[-2:])
    cy, cx = chunks[-2:]
    lo, hi = SIZE_RANGE
    if H < hi + 2 or W < hi + 2:
        raise ValueError(f"array {shape} too small for regions of up to {hi} px")

    def rand_plane():
        return tuple(rng.randrange(s) for s in lead)

    def unaligned(y0, x0):
        return y0 % cy != 0 and x0 % cx != 0

    placed = []     # (plane, y0, y1, x0, x1)
    solid = []      # the non-overlapping ones (new regions must avoid these)
    every = 12
    for i in range(n):
        h, w = rng.randint(lo, hi), rng.randint(lo, hi)
        box = None
        is_overlap = i > 1 and (i % every == every // 2 or (i == n - 1 and not any(
            _overlaps(a, b) for a, b in itertools.combinations(placed, 2))))
        if i == 0:
            box = (rand_plane(), 0, h, 0, w)
        elif i == 1:
            box = (rand_plane(), H - h, H, W - w, W)
        elif is_overlap:
            # overlap an earlier region: shift it by 250..600 px on both axes
            for _ in range(200):
                p, y0, _, x0, _ = placed[rng.randrange(len(placed))]
                ny = y0 + rng.choice((-1, 1)) * rng.randint(250, 600)
                nx = x0 + rng.choice((-1, 1)) * rng.randint(250, 600)
                if 0 < ny <= H - h and 0 < nx <= W - w and unaligned(ny, nx):
                    box = (p, ny, ny + h, nx, nx + w)
                    break
        else:
            for attempt in range(2000):
                if solid and attempt < 100 and rng.random() < 0.6:
                    p, y0, y1, x0, x1 = solid[rng.randrange(len(solid))]
                    gap = rng.randint(0, 40)
                    side = rng.randrange(4)
                    jitter_y = rng.randint(-(h // 2), h // 2)
                    jitter_x = rng.randint(-(w // 2), w // 2)
                    ny, nx = {
                        0: (y0 - gap - h, x0 + jitter_x),   # above
                        1: (y1 + gap, x0 + jitter_x),       # below
                        2: (y0 + jitter_y, x0 - gap - w),   # left
                        3: (y0 + jitter_y, x1 + gap),       # right
                    }[side]
                else:
                    p = rand_plane()
                    ny, nx = rng.randint(1, H - h - 1), rng.randint(1, W - w - 1)
                if not (0 < ny <= H - h and 0 < nx <= W - w and unaligned(ny, nx)):
                    continue
                cand = (p, ny, ny + h, nx, nx + w)
                if not any(_overlaps(cand, b) for b in placed):
                    box = cand
                    break
        if box is None:
            raise RuntimeError(f"could not place region {i} in {shape}")
        placed.append(box)
        if not is_overlap:
            solid.append(box)
    return [{"offset": [*p, y0, x0], "shape": [1] * len(lead) + [y1 - y0, x1 - x0]}
            for p, y0, y1, x0, x1 in placed]


def region_slices(roi):
    return tuple(slice(o, o + s) for o, s in zip(roi["offset"], roi["shape"]))


def chunks_of(roi, chunks):
    """The chunk grid indices a region touches."""
    ranges = [range(o // c, (o + s - 1) // c + 1) for o, s, c in zip(roi["offset"], roi["shape"], chunks)]
    return set(itertools.product(*ranges))


def stats(rois, chunks):
    """(chunks touched, chunks touched by 2+ regions, regions sharing a chunk, overlapping pairs)."""
    owners = {}
    for i, r in enumerate(rois):
        for k in chunks_of(r, chunks):
            owners.setdefault(k, []).append(i)
    shared = {k: v for k, v in owners.items() if len(v) > 1}
    sharing = {i for v in shared.values() for i in v}
    boxes = [(tuple(r["offset"][:-2]), r["offset"][-2], r["offset"][-2] + r["shape"][-2],
              r["offset"][-1], r["offset"][-1] + r["shape"][-1]) for r in rois]
    overlapping = sum(1 for a, b in itertools.combinations(boxes, 2) if _overlaps(a, b))
    return {"chunks": len(owners), "shared_chunks": len(shared), "regions_sharing": len(sharing),
            "overlapping_pairs": overlapping}


def halo_window(roi, array_shape, halo):
    """How to read a region plus its halo so that filtering the window and cropping gives the
    whole-array result (scipy mode "reflect"):

    returns (read, pad, crop): `read` is the window clipped to the array (a tuple of slices);
    `pad` the per-axis (before, after) amounts by which the array edge clipped it, to be
    restored with np.pad(mode="symmetric") (== scipy's "reflect": d c b a | a b c d); `crop`
    the slices of the padded window that hold the region."""
    read, pad, crop = [], [], []
    for o, s, n, h in zip(roi["offset"], roi["shape"], array_shape, halo):
        a, b = o - h, o + s + h
        ca, cb = max(a, 0), min(b, n)
        read.append(slice(ca, cb))
        pad.append((ca - a, b - cb))
        crop.append(slice(h, h + s))
    return tuple(read), tuple(pad), tuple(crop)


def load(path):
    with open(path) as f:
        return json.load(f)


def dump(rois, path):
    with open(path, "w") as f:
        f.write("[\n" + ",\n".join(" " + json.dumps(r) for r in rois) + "\n]\n")


def main():
    import argparse
    ap = argparse.ArgumentParser(description="print the benchmark's regions for a shape")
    ap.add_argument("shape", help="e.g. 2,8,8000,8000")
    ap.add_argument("n", type=int)
    ap.add_argument("--chunks", default="1,1,2000,2000")
    ap.add_argument("--seed", type=int, default=20261121)
    a = ap.parse_args()
    shape = tuple(int(v) for v in a.shape.split(","))
    chunks = tuple(int(v) for v in a.chunks.split(","))
    r = make_rois(shape, a.n, chunks, a.seed)
    for x in r:
        print(json.dumps(x))
    print(stats(r, chunks))


if __name__ == "__main__":
    main()
