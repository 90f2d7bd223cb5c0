"""scipy.ndimage.label on the mask written by `LABEL_NPY=/tmp/discs.npy cargo bench --bench label`.

Usage: python bench/label_scipy.py /tmp/discs.npy
Prints the component counts (to compare with the Rust bench) and the best of 10 timings.
"""
import sys
import time

import numpy as np
from scipy import ndimage

m = np.load(sys.argv[1])
for name, structure in [("conn1", None), ("conn2", np.ones((3, 3), dtype=int))]:
    _, n = ndimage.label(m, structure=structure)
    times = []
    for _ in range(10):
        t = time.perf_counter()
        ndimage.label(m, structure=structure)
        times.append(time.perf_counter() - t)
    print(f"scipy.ndimage.label {name}: {n} components, best {min(times) * 1e3:.1f} ms, "
          f"median {sorted(times)[5] * 1e3:.1f} ms")
