"""boto3 helpers for the object-store tests and benchmark (against a local S3 server).

    python s3_tool.py ENDPOINT mkbucket BUCKET
    python s3_tool.py ENDPOINT upload BUCKET PREFIX LOCAL_DIR     # a directory tree
    python s3_tool.py ENDPOINT download BUCKET PREFIX LOCAL_DIR
    python s3_tool.py ENDPOINT keys BUCKET PREFIX                 # one key per line
    python s3_tool.py ENDPOINT put BUCKET KEY TEXT

Credentials come from the environment (the tests set AWS_ACCESS_KEY_ID etc.).
"""

import os
import sys

import boto3

endpoint, cmd, bucket = sys.argv[1], sys.argv[2], sys.argv[3]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")

if cmd == "mkbucket":
    s3.create_bucket(Bucket=bucket)
elif cmd == "upload":
    prefix, local = sys.argv[4], sys.argv[5]
    for root, _, files in os.walk(local):
        for f in files:
            path = os.path.join(root, f)
            rel = os.path.relpath(path, local).replace(os.sep, "/")
            s3.upload_file(path, bucket, f"{prefix}/{rel}")
elif cmd == "download":
    prefix, local = sys.argv[4], sys.argv[5]
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/")
    for page in pages:
        for obj in page.get("Contents", []):
            rel = obj["Key"][len(prefix) + 1 :]
            dest = os.path.join(local, *rel.split("/"))
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            s3.download_file(bucket, obj["Key"], dest)
elif cmd == "keys":
    prefix = sys.argv[4]
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    for page in pages:
        for obj in page.get("Contents", []):
            print(obj["Key"])
elif cmd == "put":
    s3.put_object(Bucket=bucket, Key=sys.argv[4], Body=sys.argv[5].encode())
else:
    sys.exit(f"unknown command {cmd}")
