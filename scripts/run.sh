#!/usr/bin/env bash
# Set everything up and start Lectr on its embedded defaults:
#   database ./lectr.duckdb, rules ./rules.yaml (copied from rules.example.yaml if absent),
#   listening on 127.0.0.1:${LECTR_PORT:-8080}. Extra arguments go to mitmdump.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

[ -f rules.yaml ] || { cp rules.example.yaml rules.yaml; echo "Created rules.yaml from rules.example.yaml."; }
db="${LECTR_DB:-lectr.duckdb}"
if [ -z "$(.venv/bin/lectr keys list --db "$db" 2>/dev/null)" ]; then
    echo "No org keys yet; creating one for org 'default':"
    .venv/bin/lectr keys create default --db "$db"
fi
port="${LECTR_PORT:-8080}"
cat <<MSG

Lectr is starting on http://127.0.0.1:$port
  base_url:    OpenAI(base_url="http://127.0.0.1:$port/v1", default_headers={"X-Lectr-Key": KEY})
  HTTPS_PROXY: HTTPS_PROXY=http://127.0.0.1:$port, trusting ~/.mitmproxy/mitmproxy-ca-cert.pem
More keys: .venv/bin/lectr keys create ORG --db $db

MSG
exec .venv/bin/mitmdump -s addons/lectr.py --listen-host 127.0.0.1 -p "$port" --set lectr_db="$db" "$@"
