#!/usr/bin/env bash
# Coverage-guided fuzzing with AFL++ (cargo-afl) of everything that decodes
# outside bytes (src/fuzzing.rs), each target starting from its committed
# corpus (fuzz/corpus/<target>/).
#
#   scripts/fuzz.sh                     # every target for 20 s (what scripts/test.sh runs)
#   scripts/fuzz.sh 3600 snapshot       # one target for an hour
#
# An input that crashes or hangs a target fails the run and is copied to
# target/fuzz/found/<target>/: move it to fuzz/regressions/<target>/ with the
# fix, and tests/fuzz_regressions.rs runs it in every test run from then on.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SECONDS_EACH=${1:-20}
shift || true
TARGETS=${*:-request_body feed_message journal_record snapshot archived}
CARGO_AFL_VERSION=0.18.2
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}/fuzz

fail() { echo "error: $*" >&2; exit 1; }

if ! cargo afl --version 2>/dev/null | grep -q "$CARGO_AFL_VERSION"; then
  echo "installing cargo-afl $CARGO_AFL_VERSION from crates.io"
  cargo install cargo-afl --locked --version "$CARGO_AFL_VERSION" \
    || fail "cannot install cargo-afl (it needs a C compiler and make)"
fi
# AFL++ itself, built once per Rust toolchain.
if ! built=$(cargo afl config --build 2>&1); then
  echo "$built" | grep -q "already built" || { echo "$built" >&2; fail "cannot build AFL++"; }
fi

(cd fuzz && CARGO_TARGET_DIR=$TARGET_DIR cargo afl build --release --locked --quiet)
BINARY=$TARGET_DIR/release/surge-fuzz

status=0
for target in $TARGETS; do
  [ -d "fuzz/corpus/$target" ] || fail "no corpus fuzz/corpus/$target"
  out=$TARGET_DIR/out/$target
  rm -rf "$out"
  mkdir -p "$TARGET_DIR/out"
  echo "==> fuzzing $target for ${SECONDS_EACH}s"
  # No UI, no CPU governor or core-dump checks (shared machines), stop at the
  # time given.
  AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 \
    AFL_NO_AFFINITY=1 AFL_QUIET=1 SURGE_FUZZ_TARGET=$target \
    cargo afl fuzz -V "$SECONDS_EACH" -i "fuzz/corpus/$target" -o "$out" -- "$BINARY" >"$out.log" 2>&1 \
    || { tail -30 "$out.log" >&2; fail "afl-fuzz did not run for $target"; }
  grep -E "execs_done|paths_total|corpus_count|saved_crashes|saved_hangs" "$out/default/fuzzer_stats" | tr '\n' ' '
  echo
  found=$(find "$out/default/crashes" "$out/default/hangs" -type f ! -name README.txt 2>/dev/null || true)
  if [ -n "$found" ]; then
    mkdir -p "$TARGET_DIR/found/$target"
    cp $found "$TARGET_DIR/found/$target/"
    echo "error: $target: $(echo "$found" | wc -l) inputs crashed or hung it, copied to $TARGET_DIR/found/$target/" >&2
    status=1
  fi
done
exit $status
