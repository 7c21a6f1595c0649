#!/usr/bin/env bash
# Install the Label Studio the tests run against (DESIGN §11) into a cached
# virtualenv, once per machine. The Rust test harness
# (tests/support/label_studio.rs) calls this same script, so the README's test
# command and CI can pre-install with `scripts/label-studio.sh install`. (The
# harness then migrates a template data dir once, next to the venv, so later
# test binaries start from a copy in ~20-30 s.)
#
#   scripts/label-studio.sh install   # idempotent; prints the venv's bin dir
#   scripts/label-studio.sh path      # prints the bin dir, fails if not installed
#
# FLYWHEEL_LABEL_STUDIO_VENV overrides the location.
set -euo pipefail

VERSION="1.23.2"
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/flywheel"
VENV="${FLYWHEEL_LABEL_STUDIO_VENV:-$CACHE_ROOT/label-studio-$VERSION}"
# Written last, so a venv interrupted mid-install is never taken as ready.
MARKER="$VENV/.flywheel-installed"

installed() { [[ -f "$MARKER" && -x "$VENV/bin/label-studio" ]]; }

install() {
    if installed; then echo "$VENV/bin"; return; fi
    mkdir -p "$(dirname "$VENV")"
    # flock: parallel test binaries (or a pre-install racing a test run) must
    # not install into the same venv at once; the kernel drops the lock if the
    # holder dies, so a crashed install never wedges the next one.
    exec 9>"$VENV.lock"
    flock 9
    if ! installed; then
        local python="${PYTHON:-python3}"
        command -v "$python" >/dev/null || { echo "label-studio.sh: $python not found; install Python 3.10-3.12" >&2; exit 1; }
        rm -rf "$VENV"
        echo "label-studio.sh: installing label-studio==$VERSION into $VENV (about 90 s)" >&2
        "$python" -m venv "$VENV"
        "$VENV/bin/pip" install --quiet --disable-pip-version-check "label-studio==$VERSION" >&2
        touch "$MARKER"
    fi
    flock -u 9
    echo "$VENV/bin"
}

case "${1:-install}" in
    install) install ;;
    path) installed && echo "$VENV/bin" || { echo "label-studio.sh: not installed in $VENV" >&2; exit 1; } ;;
    *) echo "usage: $0 [install|path]" >&2; exit 2 ;;
esac
