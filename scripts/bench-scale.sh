#!/usr/bin/env bash
# Benchmark: Flywheel on a PostgreSQL database at scale (issue 8): 10 000 000
# conversations over 30 days and 1 000 000 samples, then a day of 1 000 000
# pending conversations on top. Prints the console's pane refresh times
# (`cargo bench --bench console` against the same database), and the wall
# time of `status`, `daily-capture`, `export` and `stats daily`.
#
#   scripts/bench-scale.sh
#   CONVERSATIONS=2000000 SAMPLES=200000 PENDING=200000 scripts/bench-scale.sh
#
# Needs psql and PostgreSQL on 127.0.0.1:5432 (trust auth); about 6 GB of
# disk while it runs; the database is dropped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

CONVERSATIONS="${CONVERSATIONS:-10000000}"
SAMPLES="${SAMPLES:-1000000}"
PENDING="${PENDING:-1000000}"
PG_ADMIN="${FLYWHEEL_TEST_PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"

cargo build --release --locked --quiet
bin="${CARGO_TARGET_DIR:-target}/release/flywheel"
work="$(mktemp -d)"
db="flywheel_scale_$$"
url="${PG_ADMIN%/*}/$db"
cleanup() {
  rm -rf "$work"
  psql "$PG_ADMIN" -q -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
psql "$PG_ADMIN" -q -c "CREATE DATABASE $db" >/dev/null

echo "== console panes on PostgreSQL: $CONVERSATIONS conversations, $SAMPLES samples"
BENCH_DATABASE_URL="$url" CONVERSATIONS="$CONVERSATIONS" SAMPLES="$SAMPLES" \
  cargo bench --locked --quiet --bench console

echo
echo "== a day of $PENDING pending conversations on top"
t0=$(date +%s.%N)
psql "$url" -q -v ON_ERROR_STOP=1 <<SQL
INSERT INTO conversation_logs (created_at, user_message, language, nlu_intent, nlu_provider, model_version, nlu_confidence)
SELECT now() - make_interval(secs => 60 + i % 86000),
       CASE i % 3 WHEN 0 THEN 'Where is parcel ' WHEN 1 THEN 'where IS parcel ' ELSE 'where is parcel, ' END || (i % ($PENDING / 5)),
       CASE i % 3 WHEN 0 THEN 'en' WHEN 1 THEN 'hinglish' ELSE 'hi' END, 'intent_' || (i % 40),
       CASE WHEN i % 10 = 0 THEN 'legacy-nlu' ELSE 'flywheel-router' END, 'router-v1.0.0', 0.4 + random() * 0.6
  FROM generate_series(1, $PENDING) AS s(i);
ANALYZE conversation_logs;
SQL
echo "seeded in $(echo "$(date +%s.%N) - $t0" | bc) s"

timed() {
  local label="$1"; shift
  local started ended
  started=$(date +%s.%N)
  /usr/bin/time -f "%M" -o "$work/rss" "$bin" --data-dir "$work/data" --database-url "$url" "$@" >"$work/out" 2>"$work/err" || {
    echo "$label failed:"; cat "$work/err"; exit 1; }
  ended=$(date +%s.%N)
  printf '%-28s %7.2f s wall, peak RSS %d MiB\n' "$label" "$(echo "$ended - $started" | bc)" "$(( $(tail -1 "$work/rss") / 1024 ))"
}

echo
timed "status" status
timed "daily-capture (1 day)" daily-capture --since 24h
timed "status (after)" status
timed "stats daily" stats daily
timed "export (approved samples)" export --output "$work/export.jsonl"
echo "exported $(wc -l <"$work/export.jsonl") samples"
echo
psql "$url" -At -c "SELECT 'conversation_logs ' || pg_size_pretty(pg_total_relation_size('conversation_logs')) || ', training_samples ' || pg_size_pretty(pg_total_relation_size('training_samples')) || ', review_links ' || pg_size_pretty(pg_total_relation_size('review_links'))"
