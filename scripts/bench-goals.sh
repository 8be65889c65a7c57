#!/usr/bin/env bash
# Measures the three goals of BENCHMARKS.md ("Current results") several times over, because
# on a shared two-core machine one run cannot settle a question of 10-20%: the
# same build has given anything from 34k to 55k flash-sale orders/s.
#
# Each round runs one goal's exact command once (Surge, then the baseline, back
# to back, as `surge bench --baseline postgres` does), on a fresh PostgreSQL
# journal database that is created and dropped around it. Every round's
# report.json and report.html are kept; the summary lists each round's ratio and
# the median, and says whether the goal held in every round and at the median.
#
# Usage: scripts/bench-goals.sh [ROUNDS] [GOAL...]
#   ROUNDS  rounds per goal (default 5)
#   GOAL    flash-sale | payments | payments-batch (default: all three)
# Environment:
#   SURGE_BIN        the binary to measure (default: target/release/surge, built first)
#   PG_URL           server for the journal and the baseline
#                    (default postgres://postgres@127.0.0.1:5432)
#   BENCH_DURATION_S seconds per side per round (default 10)
#   OUT              where reports go (default reports/goals-<UTC time>)
# Needs: psql, jq, and a PostgreSQL server the URL's user may create databases on.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${1:-5}"
shift || true
GOALS=("$@")
if [ ${#GOALS[@]} -eq 0 ]; then
    GOALS=(flash-sale payments payments-batch)
fi
PG_URL="${PG_URL:-postgres://postgres@127.0.0.1:5432}"
DURATION_S="${BENCH_DURATION_S:-10}"
OUT="${OUT:-reports/goals-$(date -u +%Y%m%dT%H%M%SZ)}"

for tool in psql jq; do
    command -v "$tool" >/dev/null || { echo "bench-goals: $tool is needed" >&2; exit 2; }
done
case "$ROUNDS" in
    '' | *[!0-9]* | 0) echo "bench-goals: ROUNDS must be a positive number, not '$ROUNDS'" >&2; exit 2 ;;
esac
if [ -z "${SURGE_BIN:-}" ]; then
    cargo build --release --bin surge
    SURGE_BIN=target/release/surge
fi

# The goal, the exact bench arguments, and the ratio it must reach (BENCHMARKS.md).
goal_args() {
    case "$1" in
        flash-sale) echo "flash-sale --concurrency 256 --accounts 5000 --shards 1" ;;
        payments) echo "payments --concurrency 256 --shards 1" ;;
        payments-batch) echo "payments-batch --concurrency 4 --shards 1" ;;
        *) echo "bench-goals: unknown goal '$1'" >&2; exit 2 ;;
    esac
}

# Median of the numbers on stdin, one per line.
median() {
    sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

mkdir -p "$OUT"
summary="$OUT/summary.txt"
{
    echo "bench-goals $(date -u +%Y-%m-%dT%H:%M:%SZ), $ROUNDS rounds, ${DURATION_S} s per side"
    echo "binary: $SURGE_BIN ($(git rev-parse --short HEAD 2>/dev/null || echo 'no git'))"
    echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
    echo "postgres: $(psql "$PG_URL/postgres" -Atc 'show server_version')"
} | tee "$summary"

for goal in "${GOALS[@]}"; do
    args="$(goal_args "$goal")"
    echo | tee -a "$summary"
    echo "== $goal: surge bench $args --duration-s $DURATION_S --baseline postgres" | tee -a "$summary"
    printf '%-6s %14s %14s %9s %12s %12s %s\n' round surge/s baseline/s ratio "p99 surge" "p99 base" invariants | tee -a "$summary"
    for round in $(seq 1 "$ROUNDS"); do
        dir="$OUT/$goal-$round"
        journal="surge_goals_$$_${round}"
        psql "$PG_URL/postgres" -qc "CREATE DATABASE $journal"
        status=0
        # shellcheck disable=SC2086 # the goal's arguments are words on purpose
        SURGE__STORAGE__URL="$PG_URL/$journal" "$SURGE_BIN" bench $args \
            --duration-s "$DURATION_S" --out "$dir" \
            --baseline postgres --database-url "$PG_URL/postgres" >"$dir.log" 2>&1 || status=$?
        psql "$PG_URL/postgres" -qc "DROP DATABASE $journal"
        if [ ! -f "$dir/report.json" ]; then
            echo "round $round failed (exit $status), see $dir.log" | tee -a "$summary"
            continue
        fi
        jq -r --arg round "$round" --arg status "$status" '[
            $round,
            (.throughput_per_s | floor),
            (.baseline.throughput_per_s | floor),
            (.ratio.throughput * 100 | round / 100),
            .latency_ms.p99, .baseline.latency_ms.p99,
            (if $status == "0" then "hold" else "VIOLATED (exit " + $status + ")" end)
        ] | @tsv' "$dir/report.json" |
            awk -F'\t' '{ printf "%-6s %14s %14s %8sx %12s %12s %s\n", $1, $2, $3, $4, $5, $6, $7 }' |
            tee -a "$summary"
    done
    ratios="$(for f in "$OUT/$goal"-*/report.json; do [ -f "$f" ] && jq '.ratio.throughput' "$f"; done)"
    if [ -n "$ratios" ]; then
        echo "median ratio $(echo "$ratios" | median | xargs printf '%.2f')x, lowest $(echo "$ratios" | sort -g | head -1 | xargs printf '%.2f')x, highest $(echo "$ratios" | sort -g | tail -1 | xargs printf '%.2f')x" | tee -a "$summary"
    fi
done
echo
echo "reports in $OUT (summary.txt, one report.json and report.html per round)"
