#!/usr/bin/env bash
# Fuzzing (issue 8): runs each target for a bounded time and prints, per
# target, how many inputs ran and whether anything crashed.
#
#   scripts/fuzz.sh                              # every target, 60 s each
#   FUZZ_SECONDS=300 scripts/fuzz.sh config      # one target, 5 minutes
#   FUZZ_MODE=proptest scripts/fuzz.sh           # force the proptest fallback
#
# Targets: jsonl (sample reader, samples import, ingest lines),
# serve_requests (/nlu/classify, /v1/conversations, /v1/feedback bodies),
# config (config.toml, .env, environment), label_studio (task pages,
# annotations → decisions, client answers).
#
# Mode `cargo-fuzz` (the default when `cargo fuzz` is installed) runs the
# libFuzzer targets in fuzz/ with AddressSanitizer; on the stable toolchain
# RUSTC_BOOTSTRAP=1 unlocks the sanitizer flags. The corpus grows in
# fuzz/corpus/TARGET (seeded from fuzz/seeds/TARGET); a crash is written to
# fuzz/artifacts/TARGET/ — replay it with `cargo fuzz run TARGET FILE`, then
# keep it as a named #[test] in tests/fuzz_*.rs.
#
# Mode `proptest` runs the property tests of tests/fuzz_*.rs in rounds of
# PROPTEST_CASES cases (default 2000) with a fresh random seed each round
# until the time is up. A failure is shrunk, printed and saved in
# tests/fuzz_*.proptest-regressions (replayed by every `cargo test`).
#
# The same properties run in every `cargo test` (and so in CI) with a
# small case count; this script is the long run.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-60}"
mode="${FUZZ_MODE:-auto}"
all_targets=(jsonl serve_requests config label_studio)
targets=("${@:-${all_targets[@]}}")
read -r -a targets <<<"${targets[*]}"
fuzz_target_dir="${FUZZ_TARGET_DIR:-$HOME/.cache/flywheel/fuzz-target}"
logs="$(mktemp -d "${TMPDIR:-/tmp}/flywheel-fuzz.XXXXXX")"

test_file() {
  case "$1" in
    jsonl) echo fuzz_jsonl ;;
    serve_requests) echo fuzz_serve ;;
    config) echo fuzz_config ;;
    label_studio) echo fuzz_label_studio ;;
    *) echo "unknown target $1 (expected: ${all_targets[*]})" >&2; exit 2 ;;
  esac
}
for t in "${targets[@]}"; do test_file "$t" >/dev/null; done

if [ "$mode" = auto ]; then
  if cargo fuzz --version >/dev/null 2>&1; then mode=cargo-fuzz; else mode=proptest; fi
fi
case "$mode" in
  cargo-fuzz | proptest) ;;
  *) echo "FUZZ_MODE must be auto, cargo-fuzz or proptest" >&2; exit 2 ;;
esac

# The sanitizer flags are nightly-only; the stable toolchain accepts them
# with RUSTC_BOOTSTRAP=1 (the ASan runtime ships with stable's std).
if [ "$mode" = cargo-fuzz ] && ! rustc --version | grep -q nightly; then
  export RUSTC_BOOTSTRAP=1
fi

echo "fuzzing ${targets[*]} for ${seconds}s each with $mode (logs in $logs)"
if [ "$mode" = cargo-fuzz ]; then
  (cd fuzz && cargo fuzz build --target-dir "$fuzz_target_dir" 2>&1 | tail -3) ||
    { echo "cargo fuzz build failed; FUZZ_MODE=proptest uses the property tests instead" >&2; exit 1; }
else
  # Build every test binary first so the clock only measures fuzzing.
  for t in "${targets[@]}"; do
    cargo test --locked --test "$(test_file "$t")" --no-run 2>&1 | tail -1
  done
fi

declare -A runs result elapsed
failed=0
for t in "${targets[@]}"; do
  log="$logs/$t.log"
  start=$(date +%s)
  if [ "$mode" = cargo-fuzz ]; then
    mkdir -p "fuzz/corpus/$t"
    status=0
    (cd fuzz && cargo fuzz run --target-dir "$fuzz_target_dir" "$t" "corpus/$t" "seeds/$t" -- \
      -max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=4096) >"$log" 2>&1 || status=$?
    runs[$t]=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    runs[$t]=${runs[$t]:-?}
    if [ "$status" -eq 0 ]; then
      result[$t]=ok
    else
      artifact=$(grep -o 'Test unit written to [^ ]*' "$log" | tail -1 | sed 's/Test unit written to //')
      result[$t]="CRASH (exit $status${artifact:+, input fuzz/${artifact#./}}; see $log)"
      failed=1
    fi
  else
    cases="${PROPTEST_CASES:-2000}"
    test_name="$(test_file "$t")"
    # Properties are every test but the named examples and regressions.
    properties=$(cargo test --locked --quiet --test "$test_name" -- --list 2>/dev/null |
      grep ': test$' | grep -cv -e '^regression_' -e '^example_' || true)
    rounds=0
    result[$t]=ok
    : >"$log"
    while [ $(($(date +%s) - start)) -lt "$seconds" ]; do
      if ! PROPTEST_CASES="$cases" cargo test --locked --quiet --test "$test_name" >>"$log" 2>&1; then
        result[$t]="FAILED (see $log; the shrunk input is saved in tests/$test_name.proptest-regressions)"
        failed=1
        rounds=$((rounds + 1))
        break
      fi
      rounds=$((rounds + 1))
    done
    runs[$t]=$((rounds * cases * properties))
  fi
  elapsed[$t]=$(($(date +%s) - start))
  printf '%-15s %6ss %12s executions  %s\n' "$t" "${elapsed[$t]}" "${runs[$t]}" "${result[$t]}"
done

echo
echo "summary ($mode, ${seconds}s per target):"
for t in "${targets[@]}"; do
  printf '  %-15s %6ss %12s executions  %s\n' "$t" "${elapsed[$t]}" "${runs[$t]}" "${result[$t]}"
done
exit "$failed"
