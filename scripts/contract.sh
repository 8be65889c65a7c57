#!/usr/bin/env bash
# The contract test: schemathesis (from PyPI, into a virtual environment under
# target/) generates requests from /openapi.json against a `surge serve` this
# script starts (debug build, SQLite journal in a temporary directory), with
# every check and every phase, the stateful one included (it follows the
# document's links). Zero failures is the bar.
#
#   scripts/contract.sh                          # what scripts/test.sh runs: fixed seed
#   scripts/contract.sh --max-examples 500       # longer, with a random seed
#
# Options given replace the defaults (`--max-examples 50 --seed 1`) and go to
# `schemathesis run` as they are. The server must be built (`cargo build --bin surge`).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SCHEMATHESIS_VERSION=4.32.5
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
VENV=$TARGET/schemathesis-venv
SURGE=$TARGET/debug/surge

fail() { echo "error: $*" >&2; exit 1; }

if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  echo "installing schemathesis $SCHEMATHESIS_VERSION from PyPI into $VENV"
  command -v python3 >/dev/null || fail "python3 is required for the contract test (schemathesis)"
  rm -rf "$VENV"
  python3 -m venv "$VENV" || fail "python3 -m venv failed (on Debian and Ubuntu: apt-get install python3-venv)"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" \
    || fail "cannot install schemathesis==$SCHEMATHESIS_VERSION from PyPI"
fi
[ -x "$SURGE" ] || fail "$SURGE is not built: cargo build --bin surge"

WORK=$(mktemp -d)
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
SERVER_PID=
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# The rate limit is raised out of the way: schemathesis sends thousands of
# requests with one token, and a 429 would hide what the request meant.
SURGE__HTTP__ADDR=127.0.0.1:$PORT \
  SURGE__STORAGE__URL=sqlite://$WORK/surge.db \
  SURGE__RATE_LIMIT__REQUESTS_PER_S=10000000 SURGE__RATE_LIMIT__BURST=10000000 \
  "$SURGE" serve >"$WORK/serve.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 300); do
  curl -sf "http://127.0.0.1:$PORT/ready" >/dev/null 2>&1 && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/serve.log" >&2; fail "surge serve exited before it was ready"; }
  sleep 0.2
done
curl -sf "http://127.0.0.1:$PORT/ready" >/dev/null || { cat "$WORK/serve.log" >&2; fail "surge serve was not ready within 60 s"; }
TOKEN=$("$SURGE" token --sub schemathesis --role operator)

if [ $# -eq 0 ]; then set -- --max-examples 50 --seed 1; fi
# Run from the temporary directory: schemathesis and hypothesis keep caches in
# the working directory.
status=0
(cd "$WORK" && "$VENV/bin/schemathesis" --config-file "$ROOT/tests/schemathesis/schemathesis.toml" \
  run "http://127.0.0.1:$PORT/openapi.json" -H "Authorization: Bearer $TOKEN" \
  --checks all --continue-on-failure --no-color "$@") || status=$?
if grep -q "panicked" "$WORK/serve.log"; then
  grep -B2 -A10 "panicked" "$WORK/serve.log" >&2
  fail "the server panicked during the contract test"
fi
exit $status
