"""What an S3 server can serve: parallel whole-object GETs with boto3, in MB/s.

    python s3_ceiling.py ENDPOINT BUCKET [--prefix P] [--objects N] [--size-kib K]
                         [--threads 16,32,64] [--rounds R]

Without --prefix, puts N objects of K KiB (random bytes) under `ceiling/` first. With
--prefix, reads the objects already there (e.g. an array's chunks, `in.zarr/c/`). Each
thread count GETs every object R times, spread over that many threads, each with its own
connection pool; prints one line per thread count. The client is Python: on a small
machine it competes with the server for the cores, so the figure is a lower bound of the
server's ceiling.
"""

import argparse
import os
import threading
import time

import boto3
from botocore.config import Config

ap = argparse.ArgumentParser()
ap.add_argument("endpoint")
ap.add_argument("bucket")
ap.add_argument("--prefix")
ap.add_argument("--objects", type=int, default=512)
ap.add_argument("--size-kib", type=int, default=256)
ap.add_argument("--threads", default="16,32,64")
ap.add_argument("--rounds", type=int, default=1)
args = ap.parse_args()


def client(pool):
    cfg = Config(max_pool_connections=pool, retries={"max_attempts": 2})
    return boto3.client("s3", endpoint_url=args.endpoint, region_name="us-east-1", config=cfg)


s3 = client(8)
if args.prefix is None:
    prefix = "ceiling/"
    body = os.urandom(args.size_kib << 10)
    keys = [f"{prefix}{i:06d}" for i in range(args.objects)]
    have = {
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=args.bucket, Prefix=prefix)
        for o in page.get("Contents", [])
    }
    for k in keys:
        if k not in have:
            s3.put_object(Bucket=args.bucket, Key=k, Body=body)
else:
    keys = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=args.bucket, Prefix=args.prefix
        )
        for o in page.get("Contents", [])
    ][: args.objects]
if not keys:
    raise SystemExit(f"no objects under s3://{args.bucket}/{args.prefix}")

for threads in [int(t) for t in args.threads.split(",")]:
    c = client(threads)
    work = keys * args.rounds
    nbytes = [0] * threads

    def run(t):
        for k in work[t::threads]:
            nbytes[t] += len(c.get_object(Bucket=args.bucket, Key=k)["Body"].read())

    ts = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    dt = time.perf_counter() - t0
    mb = sum(nbytes) / 2**20  # MiB, as bench/s3.sh counts
    print(
        f"{threads:3d} threads  {len(work):6d} GETs  {mb:8.1f} MB  {dt:6.2f} s  {mb / dt:8.1f} MB/s",
        flush=True,
    )
