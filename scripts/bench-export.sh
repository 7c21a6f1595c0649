#!/usr/bin/env bash
# Benchmark: `flywheel export` of N approved samples (default 1 000 000, bar:
# ≤ 5 s on SQLite, constant memory) on a fresh SQLite file and a fresh
# PostgreSQL database. Samples are seeded in the database itself (a
# recursive CTE on SQLite, generate_series on PostgreSQL).
#
#   scripts/bench-export.sh                  # both backends
#   N=200000 scripts/bench-export.sh sqlite
#
# Peak RSS is printed for N and for N/10: constant memory means the two match.
# Needs sqlite3, psql and PostgreSQL on 127.0.0.1:5432 (trust auth).
set -euo pipefail
cd "$(dirname "$0")/.."

N="${N:-1000000}"
PG_ADMIN="${FLYWHEEL_TEST_PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
backends=("${@:-sqlite postgres}")
read -r -a backends <<<"${backends[*]}"

cargo build --release --locked --quiet
bin="${CARGO_TARGET_DIR:-target}/release/flywheel"
work="$(mktemp -d)"
pg_db="flywheel_bench_export_$$"
cleanup() {
  rm -rf "$work"
  psql "$PG_ADMIN" -q -c "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# One sample per i: 40 intents, 3 languages, four sources, varied lengths.
cols="'please track my order number ' || i || CASE i % 4 WHEN 0 THEN ' right now' WHEN 1 THEN ' kahan hai' ELSE '' END,
      'please track my order number ' || i || ' ' || (i % 4),
      'intent_' || (i % 40), CASE i % 3 WHEN 0 THEN 'en' WHEN 1 THEN 'hinglish' ELSE 'hi' END,
      CASE i % 4 WHEN 0 THEN 'auto' WHEN 1 THEN 'human' WHEN 2 THEN 'synthetic' ELSE 'import' END,
      'approved', 1 + i % 7"
insert="INSERT INTO training_samples (text, normalized_text, intent, language, source, review_status, occurrences, confidence)"

run_export() {
  local label="$1" limit="$2"; shift 2
  local started ended
  started=$(date +%s.%N)
  /usr/bin/time -f "%M %U %S" -o "$work/rss" "$bin" "$@" --json export --limit "$limit" --output "$work/export.jsonl" >"$work/out.json" 2>"$work/err.log"
  ended=$(date +%s.%N)
  python3 - "$label" "$started" "$ended" "$work/out.json" "$work/rss" "$work/export.jsonl" <<'EOF'
import json, os, sys
label, start, end, out, rss, path = sys.argv[1:]
r = json.load(open(out))["export"]
kib, user, system = open(rss).read().split()[-3:]
wall = float(end) - float(start)
print(f"{label:<10} export {r['exported']:>8} samples {wall:6.2f} s wall, {float(user) + float(system):6.2f} s CPU, "
      f"peak RSS {int(kib) // 1024} MiB, {os.path.getsize(path) / 1e6:.0f} MB written, {r['exported'] / wall:,.0f} samples/s")
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
$insert SELECT $cols, 0.5 + (i % 500) / 1000.0 FROM n;
SQL
      echo "sqlite     seeded $N approved samples in $(echo "$(date +%s.%N) - $t0" | bc) s"
      run_export sqlite $((N / 10)) --data-dir "$dir"
      run_export sqlite "$N" --data-dir "$dir"
      ;;
    postgres)
      psql "$PG_ADMIN" -q -c "CREATE DATABASE $pg_db" >/dev/null
      url="${PG_ADMIN%/*}/$pg_db"
      dir="$work/postgres"
      "$bin" --data-dir "$dir" --database-url "$url" --quiet migrate
      t0=$(date +%s.%N)
      psql "$url" -q -v ON_ERROR_STOP=1 <<SQL
$insert SELECT $cols, 0.5 + (i % 500) / 1000.0 FROM generate_series(1, $N) AS s(i);
ANALYZE training_samples;
SQL
      echo "postgres   seeded $N approved samples in $(echo "$(date +%s.%N) - $t0" | bc) s"
      run_export postgres $((N / 10)) --data-dir "$dir" --database-url "$url"
      run_export postgres "$N" --data-dir "$dir" --database-url "$url"
      ;;
    *) echo "unknown backend $backend (sqlite, postgres)" >&2; exit 2 ;;
  esac
done
