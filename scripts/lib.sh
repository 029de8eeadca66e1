# Shell helpers shared by setup.sh, run.sh and workers.sh (sourced, not run).

# The oldest Python Lectr runs on (mitmproxy 12 needs 3.12).
LECTR_PYTHON_MIN="3.12"

# python_ok PY: PY runs and is new enough. (A pyenv shim for a version that is not the
# selected one exists on PATH but fails when run, so running it is the only test.)
python_ok() {
    "$1" -c "import sys, venv; sys.exit(sys.version_info < tuple(map(int, '$LECTR_PYTHON_MIN'.split('.'))))" \
        >/dev/null 2>&1
}

# find_python: print the newest suitable interpreter: $PYTHON if set, then python3.13,
# python3.12 and python3 on PATH, then pyenv's and uv's own. Says how to get one otherwise.
find_python() {
    local candidate candidates=()
    if [ -n "${PYTHON:-}" ]; then
        python_ok "$PYTHON" && { echo "$PYTHON"; return 0; }
        echo "PYTHON=$PYTHON is not a Python $LECTR_PYTHON_MIN or newer with venv." >&2
        return 1
    fi
    for candidate in python3.13 python3.12 python3; do
        command -v "$candidate" >/dev/null 2>&1 && candidates+=("$(command -v "$candidate")")
    done
    # pyenv's and uv's interpreters, newest first, whether or not they are the selected version.
    candidates+=($(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[2-9]*/bin/python3 \
        "$HOME"/.local/share/uv/python/cpython-3.1[2-9]*/bin/python3 2>/dev/null | sort -rV))
    for candidate in "${candidates[@]}"; do
        python_ok "$candidate" && { echo "$candidate"; return 0; }
    done
    cat >&2 <<MSG
Lectr needs Python $LECTR_PYTHON_MIN or newer (with venv), and none was found.
Install one, then run this again:
  Debian 13 / Ubuntu 24.04:  sudo apt-get install python3 python3-venv
  any Linux, with uv:        uv python install 3.13
  with pyenv:                pyenv install 3.13
or point at one you have:    PYTHON=/path/to/python3.13 bash scripts/setup.sh
MSG
    return 1
}

# install_debs PKG...: install the Debian packages not yet present, where apt-get may be
# used (as root, or with passwordless sudo). Returns 1, saying why, when it cannot.
install_debs() {
    local missing=() pkg sudo=""
    for pkg in "$@"; do
        command -v "$pkg" >/dev/null 2>&1 || [ -x "/usr/sbin/$pkg" ] || missing+=("$pkg")
    done
    [ ${#missing[@]} -gt 0 ] || return 0
    [ "$(id -u)" -eq 0 ] || sudo="sudo -n"
    if ! command -v apt-get >/dev/null 2>&1 || { [ -n "$sudo" ] && ! sudo -n true 2>/dev/null; }; then
        echo "Debian's ${missing[*]} is not installed and cannot be from here (needs apt-get as root or" \
            "passwordless sudo): sudo apt-get install ${missing[*]}" >&2
        return 1
    fi
    echo "Installing Debian's ${missing[*]} ..." >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-cache show "${missing[@]}" >/dev/null 2>&1 || $sudo apt-get update -qq || true
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
        { echo "Could not install ${missing[*]}." >&2; return 1; }
}

# prepare_store DB [RULES]: a rules file to start from, and an org key if DB has none yet.
# The rules file starts as rules.example.yaml, whose rules are all disabled: nothing is routed
# until the user enables one, and the message says so. RULES db: the rules kept in DB, imported
# by the user (lectr rules import), none meanwhile.
prepare_store() {
    local rules="${2:-rules.yaml}" summary
    if [ "$rules" != db ] && [ ! -f "$rules" ]; then
        cp rules.example.yaml "$rules"
        summary="$(.venv/bin/lectr rules check --file "$rules" 2>&1 | tail -n 1)" || true
        echo "Created $rules from rules.example.yaml: ${summary#"$rules: "}."
    fi
    # `keys list` prints nothing on stdout when there is no key (its note goes to stderr).
    if [ -z "$(LECTR_DB="$1" .venv/bin/lectr keys list 2>/dev/null)" ]; then
        echo "No org keys yet; creating one for org 'default':"
        LECTR_DB="$1" .venv/bin/lectr keys create default
    fi
}

# dashboard_log DB: where the dashboard of DB logs: beside it, named after it (lectr.duckdb:
# lectr-dashboard.log). One per database, so a second Lectr never writes over a running one's.
# A postgresql:// URL is no file to log beside: lectr-dashboard.log in the working directory.
dashboard_log() {
    case "$1" in
    *://*) echo "lectr-dashboard.log" ;;
    *) echo "${1%.duckdb}-dashboard.log" ;;
    esac
}

# shown_db DB: DB as a message may show it, a URL's password as *** (lectr's own messages do the same).
shown_db() { sed -E 's#^([a-z]+://[^:/@]*):[^/]*@#\1:***@#' <<<"$1"; }

# listening HOST PORT: something accepts connections there.
listening() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# free_port_after PORT [AVOID]: the first port above PORT nothing listens on at 127.0.0.1 (and not AVOID).
free_port_after() {
    local port=$(($1 + 1))
    while [ "$port" -lt 65535 ] && { [ "$port" = "${2:-}" ] || listening 127.0.0.1 "$port"; }; do
        port=$((port + 1))
    done
    echo "$port"
}

# install_node_sdk: the official Node SDK and the Node it needs (tests/node/package.json) for
# tests/test_node_sdk.py, with Debian's npm when there is none. Fails soft: the test then skips.
install_node_sdk() {
    local dir=tests/node stamp
    command -v npm >/dev/null 2>&1 || install_debs nodejs npm ||
        { echo "Without npm the Node SDK test is skipped." >&2; return 0; }
    stamp="$dir/node_modules/.installed-$(cat "$dir"/package.json "$dir"/package-lock.json 2>/dev/null |
        sha256sum | cut -c1-16)"
    [ -f "$stamp" ] && return 0
    echo "Installing the Node SDK into $dir/node_modules ..." >&2
    if (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null); then
        touch "$stamp"
    else
        echo "Could not install the Node SDK (npm ci in $dir failed); the Node SDK test is skipped." >&2
    fi
}
