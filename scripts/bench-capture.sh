#!/usr/bin/env bash
# Capture benchmarks (issue 4 bars), against a release build:
#  1. classify+log through HTTP: requests/s, p50, p99 at 64 connections, with
#     wrk as the load generator in a second process, on SQLite and PostgreSQL;
#  2. `flywheel ingest` of 100 000 and 1 000 000 JSONL lines: rows/s and peak
#     RSS (the two RSS figures show memory does not grow with the file).
#
# Usage: scripts/bench-capture.sh [DURATION_SECONDS]   (default 20)
# Env:   PG_ADMIN_URL (default postgres://postgres@127.0.0.1:5432/postgres),
#        CONNECTIONS (64), SKIP_PG=1, SKIP_HTTP=1, SKIP_INGEST=1,
#        NICE=-10 to run serve and wrk at a higher priority on a shared machine.
# Needs: wrk (installed with apt-get when missing), sqlite3, psql for PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-20}"
connections="${CONNECTIONS:-64}"
pg_admin="${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"

if ! command -v wrk >/dev/null 2>&1; then
  echo "installing wrk..." >&2
  apt-get install -y wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y wrk >/dev/null; }
fi
cargo build --release --quiet
bin="${CARGO_TARGET_DIR:-target}/release/flywheel"
work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  if [ -n "${pg_db:-}" ]; then psql -q "$pg_admin" -c "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT


cat >"$work/classify.lua" <<'LUA'
-- Varied utterances, sessions and languages, like production traffic.
local texts = {"one pizza please", "where is my order", "hello there", "mujhe khana chahiye",
               "नमस्ते", "track my burger order", "something unrelated entirely", "pizza aur burger"}
local n = 0
request = function()
  n = n + 1
  local body = string.format('{"text": "%s %d", "sessionId": "s%d", "phoneNumber": "+91 98%08d"}',
                             texts[(n % #texts) + 1], n, n % 5000, n % 100000)
  return wrk.format("POST", "/nlu/classify", {["Content-Type"] = "application/json"}, body)
end
LUA

results=()
bench_http() { # $1 = label, rest = flywheel global args
  local label="$1"; shift
  local port=$((20000 + RANDOM % 20000))
  ${NICE:+nice -n "$NICE"} "$bin" "$@" serve --addr "127.0.0.1:$port" >"$work/serve-$label.out" 2>"$work/serve-$label.err" &
  server_pid=$!
  # Fresh database: serve bootstraps the real router model (router-v1.0.0)
  # from the built-in seed set; wait until classify answers with it.
  for _ in $(seq 1 1200); do
    curl -sf -H 'Content-Type: application/json' -d '{"text":"hello"}' \
      "http://127.0.0.1:$port/nlu/classify" >/dev/null 2>&1 && break
    sleep 0.05
  done
  # Warm up (connections, page cache, prepared statements), then measure.
  wrk -t1 -c"$connections" -d3s -s "$work/classify.lua" "http://127.0.0.1:$port" >/dev/null
  ${NICE:+nice -n "$NICE"} wrk -t1 -c"$connections" -d"${duration}s" --latency -s "$work/classify.lua" "http://127.0.0.1:$port" >"$work/wrk-$label.txt"
  local captured
  captured=$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^flywheel_captured_rows_total/ {print $2}')
  kill -TERM "$server_pid"; wait "$server_pid" || true; server_pid=""
  local rps p50 p99 errors
  rps=$(awk '/Requests\/sec/ {print $2}' "$work/wrk-$label.txt")
  p50=$(awk '$1 == "50%" {print $2}' "$work/wrk-$label.txt")
  p99=$(awk '$1 == "99%" {print $2}' "$work/wrk-$label.txt")
  errors=$(awk '/Non-2xx|Socket errors/ {print}' "$work/wrk-$label.txt" | tr '\n' ' ')
  results+=("| classify+log, $label, $connections conn | $rps req/s | p50 $p50 | p99 $p99 | rows committed: $captured ${errors:+($errors)}|")
  cat "$work/wrk-$label.txt" >&2
  # serve logs only errors here (-q): show them next to the figures.
  if [ -s "$work/serve-$label.err" ]; then
    echo "serve ($label) logged:" >&2
    sort "$work/serve-$label.err" | uniq -c | sort -rn | head -5 >&2
  fi
}

# --- SQLite
if [ -z "${SKIP_HTTP:-}" ]; then
mkdir -p "$work/sqlite"
"$bin" --data-dir "$work/sqlite" -q migrate
bench_http sqlite --data-dir "$work/sqlite" -q

# --- PostgreSQL
if [ -z "${SKIP_PG:-}" ] && command -v psql >/dev/null 2>&1 && psql -q "$pg_admin" -c "SELECT 1" >/dev/null 2>&1; then
  pg_db="flywheel_bench_$$"
  psql -q "$pg_admin" -c "CREATE DATABASE $pg_db" >/dev/null
  pg_url="${pg_admin%/*}/$pg_db"
  mkdir -p "$work/pg"
  "$bin" --data-dir "$work/pg" --database-url "$pg_url" -q migrate
  bench_http postgres --data-dir "$work/pg" --database-url "$pg_url" -q
else
  echo "PostgreSQL not reachable at $pg_admin: skipping its HTTP bench" >&2
fi
fi

# --- ingest
if [ -z "${SKIP_INGEST:-}" ]; then
  for lines in 100000 1000000; do
    file="$work/ingest-$lines.jsonl"
    awk -v n="$lines" 'BEGIN { for (i = 0; i < n; i++)
      printf "{\"user_message\": \"backfilled utterance number %d about pizza\", \"nlu_intent\": \"order_food\", \"nlu_confidence\": 0.%02d, \"nlu_provider\": \"php-nlu\", \"language\": \"en\", \"session_id\": \"s%d\", \"phone_number\": \"+91 98%08d\", \"created_at\": \"2026-11-01T10:%02d:%02dZ\"}\n", i, i % 100, i % 5000, i % 100000, (i / 60) % 60, i % 60 }' >"$file"
    for backend in sqlite postgres; do
      args=(--data-dir "$work/ingest-$backend-$lines")
      if [ "$backend" = postgres ]; then
        if [ -z "${pg_url:-}" ] && [ -z "${SKIP_PG:-}" ] && psql -q "$pg_admin" -c "SELECT 1" >/dev/null 2>&1; then
          pg_db="flywheel_bench_$$"
          psql -q "$pg_admin" -c "CREATE DATABASE $pg_db" >/dev/null
          pg_url="${pg_admin%/*}/$pg_db"
        fi
        [ -n "${pg_url:-}" ] || continue
        "$bin" --data-dir "$work/pg-ingest" --database-url "$pg_url" -q migrate
        psql -q "$pg_url" -c "TRUNCATE conversation_logs CASCADE" >/dev/null
        args+=(--database-url "$pg_url")
      fi
      /usr/bin/time -f "%M" -o "$work/rss" ${NICE:+nice -n "$NICE"} "$bin" "${args[@]}" -q --json ingest "$file" >"$work/ingest.json"
      rate=$(python3 -c "import json,sys; r=json.load(open('$work/ingest.json')); print(f\"{r['imported']} rows in {r['seconds']:.1f}s = {r['rows_per_second']:.0f} rows/s\")")
      results+=("| ingest $lines lines, $backend | $rate | peak RSS $(( $(cat "$work/rss") / 1024 )) MiB | | |")
    done
  done
fi

echo
echo "Capture benchmark, $(nproc) cores ($(uname -m)), $(date -u +%Y-%m-%d); load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "| what | throughput | latency / memory | | notes |"
echo "|---|---|---|---|---|"
printf '%s\n' "${results[@]}"
