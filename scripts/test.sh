#!/usr/bin/env bash
# Surge's whole check: formatting, lints, and every test, including the ones
# against real PostgreSQL and Redis. Services that are not running are started;
# if that fails the script stops and says what is missing. No test is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

PGHOST_ADDR=${SURGE_TEST_PG_HOST:-127.0.0.1}
PGPORT_NUM=${SURGE_TEST_PG_PORT:-5432}
REDIS_PORT_NUM=${SURGE_TEST_REDIS_PORT:-6379}

step() { printf '\n==> %s\n' "$*"; }

postgres_up() { pg_isready -q -h "$PGHOST_ADDR" -p "$PGPORT_NUM" 2>/dev/null; }
redis_up() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT_NUM" ping 2>/dev/null | grep -q PONG; }

ensure_postgres() {
  if postgres_up; then return; fi
  step "PostgreSQL is not answering on $PGHOST_ADDR:$PGPORT_NUM; starting it"
  if command -v pg_ctlcluster >/dev/null && ls /etc/postgresql >/dev/null 2>&1; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
  for _ in $(seq 1 30); do postgres_up && return; sleep 1; done
  echo "error: PostgreSQL is required at $PGHOST_ADDR:$PGPORT_NUM (user postgres, trust auth) and could not be started" >&2
  exit 1
}

ensure_redis() {
  if redis_up; then return; fi
  step "Redis is not answering on 127.0.0.1:$REDIS_PORT_NUM; starting it"
  if command -v redis-server >/dev/null; then
    redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT_NUM" --save "" --appendonly no || true
  fi
  for _ in $(seq 1 30); do redis_up && return; sleep 1; done
  echo "error: Redis is required at 127.0.0.1:$REDIS_PORT_NUM and could not be started (is redis-server installed?)" >&2
  exit 1
}

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo clippy --no-default-features --all-targets -D warnings (the Docker image's build, without surge bench)"
cargo clippy --workspace --all-targets --no-default-features -- -D warnings

step "cargo doc -D warnings"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps

step "services"
ensure_postgres
ensure_redis
export SURGE_TEST_POSTGRES_URL=${SURGE_TEST_POSTGRES_URL:-postgres://postgres@$PGHOST_ADDR:$PGPORT_NUM/postgres}
export SURGE_TEST_REDIS_URL=${SURGE_TEST_REDIS_URL:-redis://127.0.0.1:$REDIS_PORT_NUM}

step "tests"
# The binary is built first: crash tests start it as a real process.
cargo build --bin surge
cargo test --workspace --lib --bins --tests --examples -- --test-threads="${SURGE_TEST_THREADS:-4}"
# Benchmarks run once each in test mode (criterion) or as a quick smoke of the
# same code (harness-less ones); they take no libtest arguments.
cargo test --workspace --benches
cargo test --workspace --doc

step "contract: schemathesis against surge serve (scripts/contract.sh)"
scripts/contract.sh

step "fuzz: every decoder under AFL++ from its corpus (scripts/fuzz.sh)"
scripts/fuzz.sh "${SURGE_FUZZ_SECONDS:-20}"

step "all checks passed"
