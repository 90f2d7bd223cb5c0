"""Create the metadata-only input of the "regions" workload's plan measurement.

    python bench/regions_plan_input.py OUT.zarr [--shape 500,100000,100000] [--chunks 1,2000,2000]

Creates a zarr v3 uint16 array (zstd level 3, fill 0) with zarr.create_array and writes no
chunk: only its zarr.json exists, so `tessera plan` on it measures planning against a huge
array (10^13 elements, 1.25 M chunks) without any data on disk.
"""

import argparse

import zarr
from zarr.codecs import ZstdCodec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("output")
    ap.add_argument("--shape", default="500,100000,100000")
    ap.add_argument("--chunks", default="1,2000,2000")
    args = ap.parse_args()
    zarr.create_array(
        store=args.output,
        shape=tuple(int(v) for v in args.shape.split(",")),
        chunks=tuple(int(v) for v in args.chunks.split(",")),
        dtype="uint16",
        compressors=ZstdCodec(level=3),
        fill_value=0,
        zarr_format=3,
        overwrite=True,
    )


if __name__ == "__main__":
    main()
