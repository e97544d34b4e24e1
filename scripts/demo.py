#!/usr/bin/env python3
"""make demo: wire buckets, queues and notifications on the local stack, run the
worker, upload a varied set of objects, and print what arrived where.

Exits 0 only if every replica matches its source (and the deleted key is gone)."""

import json
import os
import secrets
import signal
import subprocess
import sys
import time

import boto3
from botocore.config import Config

ENDPOINT = os.environ["S3R_TEST_ENDPOINT"]
REGION = "us-east-1"
ACCOUNT = "123456789012"
WORKER = sys.argv[1] if len(sys.argv) > 1 else "target/debug/s3-replicator"

session = boto3.session.Session(aws_access_key_id="demo", aws_secret_access_key="demo", region_name=REGION)
s3 = session.client("s3", endpoint_url=ENDPOINT, config=Config(s3={"addressing_style": "path"}))
sqs = session.client("sqs", endpoint_url=ENDPOINT)

run = secrets.token_hex(3)
SOURCE, REPLICA, ARCHIVE = f"demo-photos-{run}", f"demo-replica-{run}", f"demo-archive-{run}"


def queue(name):
    url = sqs.create_queue(QueueName=f"{name}-{run}")["QueueUrl"]
    return url, f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}-{run}"


def setup():
    for bucket in (SOURCE, REPLICA, ARCHIVE):
        s3.create_bucket(Bucket=bucket)
    events, events_arn = queue("demo-events")
    work, _ = queue("demo-work")
    retry, _ = queue("demo-retry")
    failed, _ = queue("demo-failed")
    s3.put_bucket_notification_configuration(
        Bucket=SOURCE,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": events_arn,
                    "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*", "s3:ObjectTagging:*", "s3:ObjectAcl:Put"],
                }
            ]
        },
    )
    config = {
        "Sources": [
            {
                "Bucket": SOURCE,
                "ReplicationConfiguration": {
                    "Role": "arn:aws:iam::123456789012:role/ignored",
                    "Rules": [
                        {
                            "ID": "everything",
                            "Priority": 1,
                            "Status": "Enabled",
                            "Filter": {},
                            "Destination": {"Bucket": f"arn:aws:s3:::{REPLICA}"},
                            "DeleteMarkerReplication": {"Status": "Enabled"},
                        },
                        {
                            "ID": "keep-reports",
                            "Priority": 2,
                            "Status": "Enabled",
                            "Filter": {"And": {"Prefix": "reports/", "Tags": [{"Key": "keep", "Value": "yes"}]}},
                            "Destination": {"Bucket": ARCHIVE, "StorageClass": "GLACIER_IR"},
                            "DeleteMarkerReplication": {"Status": "Disabled"},
                        },
                    ],
                },
            }
        ]
    }
    os.makedirs(".stack", exist_ok=True)
    path = os.path.abspath(f".stack/demo-config-{run}.json")
    with open(path, "w") as f:
        json.dump(config, f, indent=2)
    return events, work, retry, failed, path


UPLOADS = [
    # key, body, extra put_object arguments
    ("hello.txt", b"hello, replica\n", {"ContentType": "text/plain; charset=utf-8", "Metadata": {"author": "demo"}}),
    (
        "reports/2024 Q1.csv",
        b"quarter,revenue\nQ1,42\n",
        {"ContentType": "text/csv", "ContentDisposition": 'attachment; filename="q1.csv"', "Tagging": "keep=yes&team=finance"},
    ),
    ("a+b c/ünïcødé 日本.txt", "unicode key ✓\n".encode(), {"ContentLanguage": "ja"}),
    ("empty.bin", b"", {}),
    ("archive/cold.dat", bytes(range(256)) * 64, {"StorageClass": "STANDARD_IA", "CacheControl": "max-age=86400"}),
    ("public/logo.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>", {"ContentType": "image/svg+xml", "ACL": "public-read"}),
    ("to-delete.txt", b"short-lived\n", {}),
]
DELETED = "to-delete.txt"


def state(bucket, key):
    try:
        obj = s3.get_object(Bucket=bucket, Key=key)
    except s3.exceptions.NoSuchKey:
        return None
    body = obj["Body"].read()
    tags = s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
    acl = s3.get_object_acl(Bucket=bucket, Key=key)["Grants"]
    return {
        "size": len(body),
        "body": body,
        "type": obj.get("ContentType"),
        "language": obj.get("ContentLanguage"),
        "disposition": obj.get("ContentDisposition"),
        "cache": obj.get("CacheControl"),
        # The user's metadata; "s3r-*" keys are the replica's provenance.
        "meta": {k: v for k, v in obj.get("Metadata", {}).items() if not k.startswith("s3r-")},
        "tags": sorted((t["Key"], t["Value"]) for t in tags),
        "class": obj.get("StorageClass", "STANDARD"),
        "public": any(g["Grantee"].get("URI", "").endswith("AllUsers") for g in acl),
    }


def expected():
    """(destination, key) -> expected state, from the sources themselves."""
    out = {}
    for key, _, _ in UPLOADS:
        src = state(SOURCE, key)
        if key == DELETED:
            out[(REPLICA, key)] = None
            continue
        out[(REPLICA, key)] = src
        if key.startswith("reports/") and ("keep", "yes") in src["tags"]:
            out[(ARCHIVE, key)] = dict(src, **{"class": "GLACIER_IR"})
    return out


def main():
    events, work, retry, failed, config_path = setup()
    env = dict(
        os.environ,
        AWS_ENDPOINT_URL=ENDPOINT,
        AWS_REGION=REGION,
        AWS_ACCESS_KEY_ID="demo",
        AWS_SECRET_ACCESS_KEY="demo",
        REPLICATOR_CONFIG=f"file://{config_path}",
        EVENTS_QUEUE_URL=events,
        WORK_QUEUE_URL=work,
        RETRY_QUEUE_URL=retry,
        FAILED_QUEUE_URL=failed,
        RUST_LOG="info",
    )
    log_path = f".stack/demo-worker-{run}.log"
    log = open(log_path, "w")
    worker = subprocess.Popen([WORKER, "run"], env=env, stderr=log, stdout=log)
    print(f"worker started (pid {worker.pid}); logs in {log_path}")
    try:
        for key, body, extra in UPLOADS:
            s3.put_object(Bucket=SOURCE, Key=key, Body=body, **extra)
        print(f"uploaded {len(UPLOADS)} objects to {SOURCE}")
        wait_for(lambda: state(REPLICA, DELETED) is not None, "the short-lived object to replicate")
        s3.delete_object(Bucket=SOURCE, Key=DELETED)
        print(f"deleted {DELETED} at the source")
        want = expected()
        ok = wait_for(lambda: all(matches(state(b, k), w) for (b, k), w in want.items()), "every replica to match", fail=False)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
        log.close()
    print_table(want)
    parked = sqs.receive_message(QueueUrl=failed, MaxNumberOfMessages=10).get("Messages", [])
    if parked:
        print(f"\n{len(parked)} job(s) in the failed queue:")
        for m in parked:
            print("  ", m["Body"][:300])
        ok = False
    print("\nRESULT:", "every replica matches its source" if ok else "MISMATCH (see the table and the worker log)")
    return 0 if ok else 1


def matches(got, want):
    if want is None:
        return got is None
    return got is not None and all(got[f] == want[f] for f in want)


def wait_for(check, what, timeout=60, fail=True):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return True
        time.sleep(0.5)
    if fail:
        print(f"timed out waiting for {what}")
    return False


def print_table(want):
    rows = [("destination", "key", "bytes", "content-type", "class src→dst", "tags", "metadata", "public", "match")]
    for (bucket, key), w in sorted(want.items()):
        got = state(bucket, key)
        src = state(SOURCE, key)
        dest = "replica" if bucket == REPLICA else "archive"
        if w is None:
            rows.append((dest, key, "-", "-", "-", "-", "-", "-", "deleted ✓" if got is None else "STILL THERE ✗"))
            continue
        if got is None:
            rows.append((dest, key, "-", "-", "-", "-", "-", "-", "MISSING ✗"))
            continue
        rows.append(
            (
                dest,
                key,
                str(got["size"]),
                got["type"] or "-",
                f"{src['class']}→{got['class']}",
                ",".join(f"{k}={v}" for k, v in got["tags"]) or "-",
                ",".join(f"{k}={v}" for k, v in got["meta"].items()) or "-",
                "yes" if got["public"] else "no",
                "✓" if matches(got, w) else "✗",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print()
    for i, r in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
        if i == 0:
            print("  ".join("-" * w for w in widths))


if __name__ == "__main__":
    sys.exit(main())
