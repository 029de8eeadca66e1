#!/usr/bin/env bash
# Set everything up and start Lectr on its embedded defaults:
#   database ${LECTR_DB:-./lectr.duckdb}, rules ${LECTR_RULES:-./rules.yaml} (copied from rules.example.yaml,
#   whose rules are all disabled, if absent), shadow experiments ${LECTR_EXPERIMENTS:-experiments.yaml beside
#   the rules file}, the proxy on 127.0.0.1:${LECTR_PORT:-8080} and the dashboard
#   on 127.0.0.1:${LECTR_DASHBOARD_PORT:-8501} (LECTR_DASHBOARD=0: no dashboard), logging beside the
#   database (lectr.duckdb: lectr-dashboard.log). Extra arguments go to mitmdump.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
db="${LECTR_DB:-lectr.duckdb}"
rules="${LECTR_RULES:-rules.yaml}"
experiments="${LECTR_EXPERIMENTS:-}" # empty: experiments.yaml beside the rules file (proxy and dashboard alike)
port="${LECTR_PORT:-8080}"
dashboard_port="${LECTR_DASHBOARD_PORT:-8501}"
dashboard=0
[ "${LECTR_DASHBOARD:-1}" = 0 ] || dashboard=1
dashboard_log="$(dashboard_log "$db")"

# Before anything starts or is written: a second run.sh would otherwise end in mitmproxy's
# hint (--mode regular@PORT), which names no variable of ours, after starting a dashboard.
busy=0
if listening 127.0.0.1 "$port"; then
    echo "Port $port is in use (another Lectr?). Start this one on another port:" \
        "LECTR_PORT=$(free_port_after "$port" "$dashboard_port") bash scripts/run.sh" >&2
    busy=1
fi
if [ "$dashboard" = 1 ] && listening 127.0.0.1 "$dashboard_port"; then
    echo "Port $dashboard_port, for the dashboard, is in use (another Lectr's dashboard?). Start this one's on" \
        "another port: LECTR_DASHBOARD_PORT=$(free_port_after "$dashboard_port" "$port") bash scripts/run.sh," \
        "or start no dashboard: LECTR_DASHBOARD=0 bash scripts/run.sh" >&2
    busy=1
fi
[ "$busy" = 0 ] || exit 1

bash scripts/setup.sh
# Everything from here on is owner-only: logs, the database, rules and secrets hold org data.
# (After setup.sh, so that the virtual environment and Debian's packages install as usual.)
umask 077
prepare_store "$db" "$rules"
# Said at every start, not only when the file is created: a rules.yaml copied from an older example
# may route requests its user never chose to.
rules_summary="$(.venv/bin/lectr rules check --file "$rules" 2>&1 | tail -n 1)" || true
if [ "$dashboard" = 1 ]; then
    LECTR_DB="$db" LECTR_RULES="$rules" LECTR_EXPERIMENTS="$experiments" .venv/bin/streamlit run dashboard/app.py \
        --server.address 127.0.0.1 --server.port "$dashboard_port" >"$dashboard_log" 2>&1 &
    dashboard_pid=$!
    trap 'kill $dashboard_pid 2>/dev/null' EXIT
fi
cat <<MSG

Lectr is starting on http://127.0.0.1:$port
  base_url:    OpenAI(base_url="http://127.0.0.1:$port/v1", default_headers={"X-Lectr-Key": KEY})
  HTTPS_PROXY: HTTPS_PROXY=http://127.0.0.1:$port, trusting ~/.mitmproxy/mitmproxy-ca-cert.pem
More keys:   .venv/bin/lectr keys create ORG --db $(shown_db "$db")
Rules:       $rules_summary
             (a saved change applies within a second; .venv/bin/lectr rules check --file $rules lists them)
MSG
if [ "$dashboard" = 1 ]; then
    cat <<MSG
Dashboard:   http://127.0.0.1:$dashboard_port   (log: $dashboard_log)
  A demo on a database of its own (another terminal; yours stays as it is): .venv/bin/python scripts/demo.py
MSG
fi
echo
# The database through LECTR_DB (lectr_db's default), not --set: a PostgreSQL URL's password in the
# command line would show in every user's `ps`.
LECTR_DB="$db" .venv/bin/mitmdump -s addons/lectr.py --listen-host 127.0.0.1 -p "$port" \
    --set lectr_rules="$rules" --set lectr_experiments="$experiments" "$@"
