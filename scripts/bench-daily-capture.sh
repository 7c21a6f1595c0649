#!/usr/bin/env bash
# Benchmark: `flywheel daily-capture` over N pending conversations (default
# 1 000 000, bar: ≤ 20 s each) on a fresh SQLite file and a fresh PostgreSQL
# database. Rows are seeded in the database itself (a recursive CTE on
# SQLite, generate_series on PostgreSQL) so seeding takes seconds.
#
#   scripts/bench-daily-capture.sh                 # both backends
#   N=200000 DISTINCT=1000000 scripts/bench-daily-capture.sh sqlite
#
# DISTINCT: how many different utterances the N conversations use (repeats
# differ in case and punctuation, so they fold only after normalisation).
# Needs sqlite3, psql and PostgreSQL on 127.0.0.1:5432 (trust auth).
set -euo pipefail
cd "$(dirname "$0")/.."

N="${N:-1000000}"
DISTINCT="${DISTINCT:-200000}"
PG_ADMIN="${FLYWHEEL_TEST_PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
backends=("${@:-sqlite postgres}")
read -r -a backends <<<"${backends[*]}"

cargo build --release --locked --quiet
bin="${CARGO_TARGET_DIR:-target}/release/flywheel"
work="$(mktemp -d)"
pg_db="flywheel_bench_$$"
cleanup() {
  rm -rf "$work"
  psql "$PG_ADMIN" -q -c "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# One generated row per i: timestamps spread over the last ~23.9 h, 40
# intents, 3 languages, 10 % from an untrusted provider, confidence 0.4–1.0.
# Expressions are written to mean the same on both backends.
text_sql="CASE i % 3 WHEN 0 THEN 'Where is order ' WHEN 1 THEN 'where IS order ' ELSE 'where is order, ' END || (i % $DISTINCT) || CASE i % 2 WHEN 0 THEN '?' ELSE '' END"
common_cols="$text_sql, CASE i % 3 WHEN 0 THEN 'en' WHEN 1 THEN 'hinglish' ELSE 'hi' END, 'intent_' || (i % 40), CASE WHEN i % 10 = 0 THEN 'legacy-nlu' ELSE 'flywheel-router' END, 'router-v1.0.0'"

run_capture() {
  local label="$1"; shift
  local started ended
  started=$(date +%s.%N)
  /usr/bin/time -f "%M %U %S" -o "$work/rss" "$bin" "$@" --json daily-capture --since 24h >"$work/out.json" 2>"$work/err.log"
  ended=$(date +%s.%N)
  python3 - "$label" "$started" "$ended" "$work/out.json" "$work/rss" <<'EOF'
import json, sys
label, start, end, out, rss = sys.argv[1:]
r = json.load(open(out))["report"]
kib, user, system = open(rss).read().split()[-3:]
print(f"{label:<10} daily-capture {float(end) - float(start):6.2f} s wall, {float(user) + float(system):6.2f} s CPU, peak RSS {int(kib) // 1024} MiB  "
      f"captured {r['captured']}  auto-approved {r['auto_approved']}  needs review {r['needs_review']}  "
      f"new samples {r['new_samples']['approved'] + r['new_samples']['needs_review']}  folded {r['duplicates_folded']}")
EOF
}

for backend in "${backends[@]}"; do
  case "$backend" in
    sqlite)
      dir="$work/sqlite"
      "$bin" --data-dir "$dir" --quiet migrate
      t0=$(date +%s.%N)
      sqlite3 "$dir/flywheel.db" <<SQL
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $N)
INSERT INTO conversation_logs (created_at, user_message, language, nlu_intent, nlu_provider, model_version, nlu_confidence)
SELECT strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-' || (60 + i % 86000) || ' seconds'), $common_cols,
       0.4 + (abs(random()) % 600) / 1000.0
  FROM n;
SQL
      echo "sqlite     seeded $N conversations in $(echo "$(date +%s.%N) - $t0" | bc) s"
      run_capture sqlite --data-dir "$dir"
      ;;
    postgres)
      psql "$PG_ADMIN" -q -c "CREATE DATABASE $pg_db" >/dev/null
      url="${PG_ADMIN%/*}/$pg_db"
      dir="$work/postgres"
      "$bin" --data-dir "$dir" --database-url "$url" --quiet migrate
      t0=$(date +%s.%N)
      psql "$url" -q -v ON_ERROR_STOP=1 <<SQL
INSERT INTO conversation_logs (created_at, user_message, language, nlu_intent, nlu_provider, model_version, nlu_confidence)
SELECT now() - make_interval(secs => 60 + i % 86000), $common_cols, 0.4 + random() * 0.6
  FROM generate_series(1, $N) AS s(i);
ANALYZE conversation_logs;
SQL
      echo "postgres   seeded $N conversations in $(echo "$(date +%s.%N) - $t0" | bc) s"
      run_capture postgres --data-dir "$dir" --database-url "$url"
      ;;
    *) echo "unknown backend $backend (sqlite, postgres)" >&2; exit 2 ;;
  esac
done
