#!/usr/bin/env bash
# The local stack: two moto servers on loopback. The first is "AWS" (source, queues,
# same-endpoint destinations); the second stands in for another provider.
#   scripts/stack.sh up | down | env
set -euo pipefail
cd "$(dirname "$0")/.."
dir=.stack
ports=("${MOTO_PORT:-45610}" "${MOTO_PORT_2:-45611}")
moto=.venv/bin/moto_server

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
}

down() {
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
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  env) env_lines ;;
  *) echo "usage: $0 up|down|env" >&2; exit 2 ;;
esac
