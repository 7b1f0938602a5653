#!/usr/bin/env bash
# The main job on the embedded default: a dev AS and local state, no cluster.
# Registers examples/clients/, shows them, and proves the issued credentials obtain a token.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${CLIENTREG_VENV:-.venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
# shellcheck disable=SC1091
. "$venv/bin/activate"
python -m pip install -q -e . >/dev/null

work=$(mktemp -d)
port=9400   # examples/clients/00-server.yaml names http://127.0.0.1:9400
clientreg dev-server --port "$port" --initial-access-token dev-iat --db "$work/dev-as.sqlite" \
  >"$work/dev-server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  python - "$port" <<'PY' && break
import sys, urllib.request
try:
    urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/.well-known/oauth-authorization-server", timeout=1)
except Exception:
    sys.exit(1)
PY
  sleep 0.2
done

state="$work/state"
echo "\$ clientreg apply -f examples/clients"
clientreg apply -f examples/clients --state-dir "$state"
echo
echo "\$ clientreg apply -f examples/clients   # again: nothing to do"
clientreg apply -f examples/clients --state-dir "$state"
echo
echo "\$ clientreg get -o json"
clientreg get --state-dir "$state" -o json
echo
echo "\$ clientreg token billing-worker"
clientreg token billing-worker --state-dir "$state" --scope "api:read"
echo
echo "State kept in $state (files are 0600); dev AS log: $work/dev-server.log"
