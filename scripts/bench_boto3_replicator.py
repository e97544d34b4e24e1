#!/usr/bin/env python3
"""The baseline of `make bench`'s throughput: a simple boto3 replicator, as a team would
write one, doing per object what ours does on the same stack: HEAD the source, then
CopyObject (metadata and tags copied by S3, conditional on the ETag it read). Eight
threads. Keys from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY ("test" without).

    bench_boto3_replicator.py ENDPOINT SOURCE DESTINATION KEYS_FILE

Prints one JSON line: {"objects": N, "seconds": wall, "cpu_seconds": user+system}.
"""

import json
import os
import resource
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config

endpoint, source, destination, keys_file = sys.argv[1:5]
keys = [k for k in open(keys_file).read().split("\n") if k]
s3 = boto3.client(
    "s3",
    endpoint_url=endpoint,
    region_name="us-east-1",
    aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "test"),
    aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
    config=Config(max_pool_connections=8, s3={"addressing_style": "path"}),
)


def replicate(key):
    head = s3.head_object(Bucket=source, Key=key)
    s3.copy_object(
        Bucket=destination,
        Key=key,
        CopySource={"Bucket": source, "Key": key},
        CopySourceIfMatch=head["ETag"],
        MetadataDirective="COPY",
        TaggingDirective="COPY",
    )


started = time.monotonic()
with ThreadPoolExecutor(max_workers=8) as pool:
    list(pool.map(replicate, keys))
seconds = time.monotonic() - started
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"objects": len(keys), "seconds": seconds, "cpu_seconds": usage.ru_utime + usage.ru_stime}))
