#!/usr/bin/env bash
# The local stack: two moto servers on loopback. The first is "AWS" (source, queues,
# same-endpoint destinations, Secrets Manager); the second stands in for another
# provider. s3s-fs (built by `make tools`) is a third provider, one that checks
# signatures, checksums and preconditions strictly.
#   scripts/stack.sh up | down | env
set -euo pipefail
cd "$(dirname "$0")/.."
dir=.stack
ports=("${MOTO_PORT:-45610}" "${MOTO_PORT_2:-45611}")
moto=.venv/bin/moto_server
s3s=.tools/bin/s3s-fs
s3s_port="${S3S_PORT:-45612}"
# Test-only keys of the local s3s-fs; tests hand them over through a secret.
s3s_access=s3r-test-access
s3s_secret=s3r-test-secret-key

up() {
  mkdir -p "$dir"
  [ -x "$moto" ] || { echo "stack: $moto is missing; run 'make venv'" >&2; exit 1; }
  for port in "${ports[@]}"; do
    pidfile="$dir/moto-$port.pid"
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      continue
    fi
    "$moto" -H 127.0.0.1 -p "$port" >"$dir/moto-$port.log" 2>&1 &
    echo $! >"$pidfile"
  done
  for port in "${ports[@]}"; do
    for _ in $(seq 1 100); do
      if .venv/bin/python - "$port" <<'PY' 2>/dev/null
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/moto-api/", timeout=1)
PY
      then continue 2; fi
      sleep 0.2
    done
    echo "stack: moto on port $port did not start; see $dir/moto-$port.log" >&2
    tail -20 "$dir/moto-$port.log" >&2 || true
    exit 1
  done
  [ -x "$s3s" ] || { echo "stack: $s3s is missing; run 'make tools'" >&2; exit 1; }
  pidfile="$dir/s3s-fs.pid"
  if ! { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }; then
    rm -rf "$dir/s3s-fs" && mkdir -p "$dir/s3s-fs"
    "$s3s" --host 127.0.0.1 --port "$s3s_port" --access-key "$s3s_access" --secret-key "$s3s_secret" \
      "$dir/s3s-fs" >"$dir/s3s-fs.log" 2>&1 &
    echo $! >"$pidfile"
  fi
  for _ in $(seq 1 100); do
    if .venv/bin/python - "$s3s_port" <<'PY' 2>/dev/null
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/", timeout=1)
except urllib.error.HTTPError:
    pass  # an S3 error answer: the server is up
PY
    then return 0; fi
    sleep 0.2
  done
  echo "stack: s3s-fs on port $s3s_port did not start; see $dir/s3s-fs.log" >&2
  tail -20 "$dir/s3s-fs.log" >&2 || true
  exit 1
}

down() {
  if [ -f "$dir/s3s-fs.pid" ]; then
    kill "$(cat "$dir/s3s-fs.pid")" 2>/dev/null || true
    rm -f "$dir/s3s-fs.pid"
  fi
  for port in "${ports[@]}"; do
    pidfile="$dir/moto-$port.pid"
    if [ -f "$pidfile" ]; then
      kill "$(cat "$pidfile")" 2>/dev/null || true
      rm -f "$pidfile"
    fi
  done
}

env_lines() {
  echo "S3R_TEST_ENDPOINT=http://127.0.0.1:${ports[0]}"
  echo "S3R_TEST_ENDPOINT_2=http://127.0.0.1:${ports[1]}"
  echo "S3R_TEST_S3S=http://127.0.0.1:${s3s_port}"
  echo "S3R_TEST_S3S_ACCESS_KEY=${s3s_access}"
  echo "S3R_TEST_S3S_SECRET_KEY=${s3s_secret}"
  echo "S3R_TEST_S3S_ROOT=$PWD/$dir/s3s-fs"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  env) env_lines ;;
  *) echo "usage: $0 up|down|env" >&2; exit 2 ;;
esac
