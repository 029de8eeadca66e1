# Shell helpers shared by setup.sh, run.sh and workers.sh (sourced, not run).

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

# prepare_store DB: a rules file to start from, and an org key if DB has none yet.
prepare_store() {
    [ -f rules.yaml ] || { cp rules.example.yaml rules.yaml; echo "Created rules.yaml from rules.example.yaml."; }
    if [ -z "$(.venv/bin/lectr keys list --db "$1" 2>/dev/null)" ]; then
        echo "No org keys yet; creating one for org 'default':"
        .venv/bin/lectr keys create default --db "$1"
    fi
}
