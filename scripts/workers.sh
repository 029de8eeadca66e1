#!/usr/bin/env bash
# Run N Lectr processes behind one address, for more than one core:
#   HAProxy on 127.0.0.1:${LECTR_PORT:-8080} (TCP mode, least connections) in front of N workers
#   (`mitmdump -s addons/lectr.py`) on the same port at 127.0.0.2, 127.0.0.3, ... (see lectr/admin/haproxy.py);
#   each worker writes its events to ${LECTR_WORKERS_DIR:-lectr-workers}/worker-<i>.duckdb and reads
#   org keys from the main database ${LECTR_DB:-lectr.duckdb}; `lectr jobs` collects the workers'
#   files into the main one every 5 s and runs the aggregator, anomaly checks and recommendations
#   there; the dashboard on 127.0.0.1:${LECTR_DASHBOARD_PORT:-8501} reads the main one (LECTR_DASHBOARD=0: none).
# Usage: scripts/workers.sh N [MITMDUMP ARGS...]    Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

n="${1:-}"
if ! [[ "$n" =~ ^[1-9][0-9]*$ ]]; then
    echo "Usage: scripts/workers.sh N [MITMDUMP ARGS...]   (N: how many Lectr processes, e.g. $(nproc))" >&2
    exit 2
fi
shift
bash scripts/setup.sh

source scripts/lib.sh
install_debs haproxy || exit 1
# Everything from here on is owner-only: logs, the database, rules and secrets hold org data.
# (After setup.sh and install_debs, so that the virtual environment and Debian's packages install as usual.)
umask 077
haproxy="$(command -v haproxy || echo /usr/sbin/haproxy)"
db="${LECTR_DB:-lectr.duckdb}"
rules="${LECTR_RULES:-rules.yaml}"
experiments="${LECTR_EXPERIMENTS:-}" # empty: experiments.yaml beside the rules file (workers and dashboard alike)
prepare_store "$db" "$rules"
dashboard_log="$(dashboard_log "$db")"
dir="${LECTR_WORKERS_DIR:-lectr-workers}"
mkdir -p "$dir"
port="${LECTR_PORT:-8080}"
dashboard_port="${LECTR_DASHBOARD_PORT:-8501}"

# wait_listening HOST PORT PID LOG: until PID listens there (30 s at most); a clear error if it does not.
wait_listening() {
    for _ in $(seq 300); do
        listening "$1" "$2" && return 0
        kill -0 "$3" 2>/dev/null || break
        sleep 0.1
    done
    echo "Nothing started listening on $1:$2; see $4" >&2
    exit 1
}
# The workers listen on HAProxy's port at other loopback addresses: a request for Lectr itself
# (GET /healthz) names HAProxy's address, which a worker on another port would forward back into
# HAProxy, endlessly. lectr/admin/haproxy.py (worker_addresses) explains.
hosts=()
for ((i = 2; i < n + 2; i++)); do hosts+=("127.0.0.$i"); done
for host in 127.0.0.1 "${hosts[@]}"; do
    if listening "$host" "$port"; then
        echo "$host:$port is taken: stop what listens there or set LECTR_PORT." >&2
        exit 1
    fi
done

worker_pids=()
cleanup() {
    trap - EXIT INT TERM
    # HAProxy first (no new connections), then the workers (they write what they hold),
    # then the jobs loop (its last collection takes what the workers wrote), then the dashboard.
    [ -z "${haproxy_pid:-}" ] || kill "$haproxy_pid" 2>/dev/null || true
    for pid in "${worker_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${worker_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    [ -z "${jobs_pid:-}" ] || { kill "$jobs_pid" 2>/dev/null || true; wait "$jobs_pid" 2>/dev/null || true; }
    [ -z "${dashboard_pid:-}" ] || kill "$dashboard_pid" 2>/dev/null || true
    wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for i in "${!hosts[@]}"; do
    w=$((i + 1))
    .venv/bin/mitmdump -s addons/lectr.py --listen-host "${hosts[$i]}" -p "$port" \
        --set lectr_db="$dir/worker-$w.duckdb" --set lectr_keys_db="$db" --set lectr_rules="$rules" \
        --set lectr_experiments="$experiments" \
        --set lectr_aggregate_every=0 --set lectr_anomalies_every=0 --set lectr_recommend_every=0 \
        "$@" >"$dir/worker-$w.log" 2>&1 &
    worker_pids+=($!)
    # The first worker creates mitmproxy's CA (~/.mitmproxy) if there is none yet; the others share it.
    [ "$w" -gt 1 ] || wait_listening "${hosts[0]}" "$port" "${worker_pids[0]}" "$dir/worker-1.log"
done
for i in "${!hosts[@]}"; do wait_listening "${hosts[$i]}" "$port" "${worker_pids[$i]}" "$dir/worker-$((i + 1)).log"; done
backends="$(printf "%s:$port," "${hosts[@]}")"
.venv/bin/lectr haproxy-config --port "$port" --backends "${backends%,}" >"$dir/haproxy.cfg"
"$haproxy" -db -f "$dir/haproxy.cfg" >"$dir/haproxy.log" 2>&1 &
haproxy_pid=$!
# Its own session: Ctrl-C reaches the workers, and the jobs loop is stopped after them (see cleanup).
setsid .venv/bin/lectr jobs --db "$db" --collect "$dir/worker-*.duckdb" >"$dir/jobs.log" 2>&1 &
jobs_pid=$!
if [ "${LECTR_DASHBOARD:-1}" != 0 ]; then
    LECTR_DB="$db" LECTR_RULES="$rules" LECTR_EXPERIMENTS="$experiments" .venv/bin/streamlit run dashboard/app.py \
        --server.address 127.0.0.1 --server.port "$dashboard_port" >"$dashboard_log" 2>&1 &
    dashboard_pid=$!
fi
wait_listening 127.0.0.1 "$port" "$haproxy_pid" "$dir/haproxy.log"

cat <<MSG

Lectr is running as $n workers behind HAProxy on http://127.0.0.1:$port
  base_url:    OpenAI(base_url="http://127.0.0.1:$port/v1", default_headers={"X-Lectr-Key": KEY})
  HTTPS_PROXY: HTTPS_PROXY=http://127.0.0.1:$port, trusting ~/.mitmproxy/mitmproxy-ca-cert.pem
Workers:     ${hosts[0]}-${hosts[$((n - 1))]} port $port, each writing $dir/worker-<i>.duckdb (logs: $dir/worker-<i>.log)
Main file:   $db (keys; collected events, summaries, anomalies, recommendations; log: $dir/jobs.log)
More keys:   .venv/bin/lectr keys create ORG --db $db
MSG
[ -z "${dashboard_pid:-}" ] || echo "Dashboard:   http://127.0.0.1:$dashboard_port   (log: $dashboard_log)"
echo "Ctrl-C stops everything."

# Until Ctrl-C, or until one of them exits (then everything stops: its log says why).
wait -n "$haproxy_pid" "$jobs_pid" "${worker_pids[@]}" || true
echo "Stopping HAProxy, the workers and the jobs loop (logs: $dir/) ..." >&2
exit 1
