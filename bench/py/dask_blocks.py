"""dask's map_blocks with the threaded scheduler over the same functions as Tessera:
python bench/py/dask_blocks.py IN OUT FUNC WORKERS"""

import sys

import dask
import dask.array as da

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import blocks  # noqa: E402

src, dst, func, workers = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
x = da.from_zarr(src)
y = x.map_blocks(getattr(blocks, func), dtype=x.dtype)
with dask.config.set(scheduler="threads", num_workers=workers):
    y.to_zarr(dst, overwrite=True)
