"""The output array every peer script writes: a new Zarr v3 array, zstd level 3 (what
Tessera writes by default), fill value 0, replacing what is there."""

import zarr
from zarr.codecs import ZstdCodec


def create(path, shape, chunks, dtype):
    return zarr.create_array(
        store=path,
        shape=shape,
        chunks=chunks,
        dtype=dtype,
        compressors=ZstdCodec(level=3),
        fill_value=0,
        zarr_format=3,
        overwrite=True,
    )
