"""A gaussian over a 1 GiB float32 NumPy array passed in from Python: `tessera.eval` against
`scipy.ndimage.gaussian_filter` on the same array (the Python package's target: at least 3x
faster, with results equal to scipy). Run with the venv the package is installed in:

    .venv/bin/python bench/python_gaussian.py [--repeat R] [--sigma S] [--side N] [--workers W]

The input is f32 (side, side), 16384 x 16384 by default (1 GiB): a staircase of 32-px squares
plus uniform noise, as the CLI's gaussian workload. Tessera reads it in place (no copy) in
chunks of 1024 x 1024 and returns a new NumPy array. The runs alternate, R pairs (default 3);
each pair checks Tessera's result against scipy's element for element. Medians, all runs and
the ratio are printed, with the peak RSS growth of each call (from /proc/self/status, VmHWM
reset before every call).
"""

import argparse
import statistics
import time

import numpy as np
import scipy.ndimage as ndi

import tessera


def reset_peak() -> None:
    # Writing "5" to clear_refs resets the peak RSS (VmHWM) of this process (Linux >= 4.0).
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def rss_mib(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def timed(fn):
    base = rss_mib("VmRSS")
    reset_peak()
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    out = fn()
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    return out, wall, cpu, rss_mib("VmHWM") - base


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sigma", type=float, default=5.0)
    ap.add_argument("--side", type=int, default=16384)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    side, sigma = args.side, args.sigma

    rng = np.random.default_rng(4)
    steps = (np.arange(side) // 32 % 64).astype(np.uint8)
    a = ((steps[:, None] + steps[None, :]) % 64).astype(np.float32)
    a *= 4
    a += rng.random((side, side), dtype=np.float32) * 50
    print(f"input: f32 {side}x{side} ({a.nbytes / 2**30:.2f} GiB), sigma {sigma}, "
          f"{args.workers} workers, chunks 1024x1024")

    engine = tessera.Engine(workers=args.workers)
    src = f"x.map(gaussian({sigma}))"
    x = tessera.chunked(a, (1024, 1024))
    rows = {"scipy": [], "tessera": []}
    for i in range(args.repeat):
        want, *m = timed(lambda: ndi.gaussian_filter(a, sigma, mode="reflect", truncate=4.0))
        rows["scipy"].append(m)
        got, *m = timed(lambda: engine.eval(src, x=x))
        rows["tessera"].append(m)
        if got.dtype != want.dtype or got.shape != want.shape:
            raise SystemExit(f"pair {i}: tessera gave {got.dtype}{got.shape}, "
                             f"scipy {want.dtype}{want.shape}")
        if not np.array_equal(got, want):
            diff = np.abs(got.astype(np.float64) - want)
            raise SystemExit(f"pair {i}: results differ: max |diff| {diff.max():.3g} at "
                             f"{np.unravel_index(diff.argmax(), diff.shape)}")
        del got, want

    print(f"{'':<8} {'wall s':>8} {'cpu s':>8} {'peak +MiB':>10}   all wall s")
    med = {}
    for name, runs in rows.items():
        w = statistics.median(r[0] for r in runs)
        c = statistics.median(r[1] for r in runs)
        p = statistics.median(r[2] for r in runs)
        med[name] = w
        print(f"{name:<8} {w:8.3f} {c:8.3f} {p:10.0f}   "
              + " ".join(f"{r[0]:.3f}" for r in runs))
    print(f"speed-up (scipy wall / tessera wall, medians): {med['scipy'] / med['tessera']:.2f}x; "
          f"results equal to scipy element for element in all {args.repeat} pairs")


if __name__ == "__main__":
    main()
