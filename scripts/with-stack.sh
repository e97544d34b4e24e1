#!/usr/bin/env bash
# Runs a command with the local stack up (started here, stopped on exit) and its
# endpoints in the environment.
set -euo pipefail
cd "$(dirname "$0")/.."
trap 'scripts/stack.sh down' EXIT
scripts/stack.sh up
while IFS= read -r line; do export "${line?}"; done < <(scripts/stack.sh env)
"$@"
