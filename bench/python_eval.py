"""Per-call cost of `tessera.eval("x.sum()", x=a)` on a 1,000-element array (the Python
package's target: under 5 ms). Run with the venv the package is installed in:

    .venv/bin/python bench/python_eval.py [CALLS]
"""

import statistics
import sys
import time

import numpy as np

import tessera

calls = int(sys.argv[1]) if len(sys.argv) > 1 else 200
a = np.random.default_rng(0).random(1000)
assert np.isclose(tessera.eval("x.sum()", x=a), a.sum())
for label, fn in [
    ("tessera.eval", lambda: tessera.eval("x.sum()", x=a)),
    ("Engine().eval", None),
]:
    if fn is None:
        e = tessera.Engine()
        e.bind(x=a)
        fn = lambda: e.eval("x.sum()")  # noqa: E731
    for _ in range(10):
        fn()
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    times.sort()
    print(
        f"{label:<14} median {statistics.median(times) * 1e3:.2f} ms  "
        f"p90 {times[int(0.9 * len(times))] * 1e3:.2f} ms  ({calls} calls)"
    )
