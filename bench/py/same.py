"""Exit 1 unless two Zarr arrays hold the same values: python bench/py/same.py A B"""

import sys

import numpy as np
import zarr

a, b = (zarr.open_array(p, mode="r")[...] for p in sys.argv[1:3])
if a.shape != b.shape or a.dtype != b.dtype or not np.array_equal(a, b):
    sys.exit(f"{sys.argv[1]} and {sys.argv[2]} differ")
