#!/usr/bin/env bash
# Create .venv and install Lectr with every version pinned (constraints.txt).
# Usage: scripts/setup.sh [EXTRAS]    e.g. scripts/setup.sh test
# Idempotent and quick when nothing changed; run.sh and test.sh call it.
set -euo pipefail
cd "$(dirname "$0")/.."

extras="${1:-}"
python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "Lectr needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2
    exit 1
fi
[ -x .venv/bin/python ] || "$python" -m venv .venv

hash="$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)"
stamp=".venv/.installed-$hash-${extras:-base}"
# An install with the test extras holds everything the base install does.
if [ ! -f "$stamp" ] && [ ! -f ".venv/.installed-$hash-test" ]; then
    echo "Installing Lectr into .venv ..." >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".${extras:+[$extras]}"
    .venv/bin/python -m pip check
    touch "$stamp"
fi

# With the test extras, two Debian packages: `chromium` for the browser test
# (tests/test_dashboard_browser.py; skipped without it) and `haproxy` for the multi-worker
# test (tests/test_multiworker.py; fails without it).
if [ "$extras" = test ]; then
    source scripts/lib.sh
    install_debs chromium haproxy || echo "Without chromium the browser test is skipped, without haproxy" \
        "the multi-worker test fails." >&2
fi
