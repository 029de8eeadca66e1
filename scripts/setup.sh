#!/usr/bin/env bash
# Create .venv and install Lectr with every version pinned (constraints.txt).
# Usage: scripts/setup.sh [EXTRAS]    e.g. scripts/setup.sh test
# Idempotent and quick when nothing changed; run.sh and test.sh call it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

extras="${1:-}"
if [ ! -x .venv/bin/python ] || ! python_ok .venv/bin/python; then
    python="$(find_python)" || exit 1
    rm -rf .venv  # one made by an older interpreter cannot be upgraded in place
    echo "Creating .venv with $("$python" -c 'import sys; print(sys.executable, sys.version.split()[0])')" >&2
    "$python" -m venv .venv
fi

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

# With the test extras, Debian's `chromium` for the browser test (tests/test_dashboard_browser.py;
# skipped without it), `haproxy` for the multi-worker test (tests/test_multiworker.py; fails
# without it), `postgresql` for the PostgreSQL store's tests (scripts/harness/postgres.py starts a temporary
# server of its own; they fail without it) and `nodejs`/`npm` for the official Node SDK's test
# (tests/test_node_sdk.py).
if [ "$extras" = test ]; then
    install_debs chromium haproxy || echo "Without chromium the browser test is skipped, without haproxy" \
        "the multi-worker test fails." >&2
    # No command is named `postgresql` (what install_debs looks for): look for its server where
    # scripts/harness/postgres.py does, PATH's initdb or Debian's /usr/lib/postgresql/*/bin.
    command -v initdb >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null ||
        install_debs postgresql || echo "Without postgresql the PostgreSQL store's tests fail." >&2
    install_node_sdk
fi
