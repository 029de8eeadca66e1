#!/usr/bin/env bash
# Set everything up and start Lectr on its embedded defaults:
#   database ./lectr.duckdb, rules ./rules.yaml (copied from rules.example.yaml if absent),
#   the proxy on 127.0.0.1:${LECTR_PORT:-8080} and the dashboard on 127.0.0.1:${LECTR_DASHBOARD_PORT:-8501}
#   (LECTR_DASHBOARD=0: no dashboard). Extra arguments go to mitmdump.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Everything from here on is owner-only: logs, the database, rules and secrets hold org data.
# (After setup.sh, so that the virtual environment and Debian's packages install as usual.)
umask 077

source scripts/lib.sh
db="${LECTR_DB:-lectr.duckdb}"
prepare_store "$db"
port="${LECTR_PORT:-8080}"
dashboard_port="${LECTR_DASHBOARD_PORT:-8501}"
if [ "${LECTR_DASHBOARD:-1}" != 0 ]; then
    LECTR_DB="$db" LECTR_RULES=rules.yaml .venv/bin/streamlit run dashboard/app.py \
        --server.address 127.0.0.1 --server.port "$dashboard_port" >lectr-dashboard.log 2>&1 &
    dashboard_pid=$!
    trap 'kill $dashboard_pid 2>/dev/null' EXIT
fi
cat <<MSG

Lectr is starting on http://127.0.0.1:$port
  base_url:    OpenAI(base_url="http://127.0.0.1:$port/v1", default_headers={"X-Lectr-Key": KEY})
  HTTPS_PROXY: HTTPS_PROXY=http://127.0.0.1:$port, trusting ~/.mitmproxy/mitmproxy-ca-cert.pem
More keys: .venv/bin/lectr keys create ORG --db $db
Dashboard:   http://127.0.0.1:$dashboard_port   (log: lectr-dashboard.log)
  Fill it with a minute of demo traffic (in another terminal): .venv/bin/python scripts/demo.py

MSG
.venv/bin/mitmdump -s addons/lectr.py --listen-host 127.0.0.1 -p "$port" --set lectr_db="$db" "$@"
