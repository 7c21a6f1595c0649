#!/usr/bin/env bash
# Runs every test: formatting, lints, and the whole suite against embedded
# SQLite and the real PostgreSQL on 127.0.0.1:5432 (trust auth). This is the
# README's test command and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."

# PostgreSQL is part of the suite. In CI an unreachable server is a failure
# (the tests themselves also refuse to skip when CI is set).
pg_admin="${FLYWHEEL_TEST_PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
if command -v pg_isready >/dev/null 2>&1 && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  if [ -n "${CI:-}" ]; then
    echo "PostgreSQL is not answering on 127.0.0.1:5432 ($pg_admin); CI needs it" >&2
    exit 1
  fi
  echo "warning: PostgreSQL is not answering on 127.0.0.1:5432; its half of the tests will be skipped" >&2
fi

# Tools some tests drive: tmux (the console in a real terminal), jq (the
# runbook's pipelines), promtool (the shipped alert rules; Debian's
# `prometheus` package ships it) and systemd-analyze (verifies the shipped
# units in assets/systemd; Debian's `systemd` package, which installs it
# without making systemd the running init). Installed from Debian's packages when
# missing and possible; otherwise say which and stop before a long build.
missing=()
for pair in tmux:tmux jq:jq promtool:prometheus systemd-analyze:systemd; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "installing ${missing[*]} (needed by the TUI, runbook, alert-rule and install tests)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
  else
    echo "the tests need ${missing[*]}; install them (e.g. apt-get install ${missing[*]})" >&2
    exit 1
  fi
fi

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --all-targets --locked
