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

# The browser test (tests/test_dashboard_browser.py) needs headless Chromium: Debian's `chromium`
# package, installed with the test extras where apt-get may be used (as root, or passwordless sudo).
# Elsewhere that one test is skipped.
if [ "$extras" = test ] && ! command -v chromium >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo -n"
    if command -v apt-get >/dev/null 2>&1 && { [ -z "$sudo" ] || sudo -n true 2>/dev/null; }; then
        echo "Installing Debian's chromium package for the dashboard browser test ..." >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-cache show chromium >/dev/null 2>&1 || $sudo apt-get update -qq || true
        $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null ||
            echo "Could not install chromium: the dashboard browser test will be skipped." >&2
    else
        echo "chromium is not installed and cannot be (needs apt-get as root): the dashboard browser test" \
            "will be skipped. Install Debian's chromium package to run it." >&2
    fi
fi
