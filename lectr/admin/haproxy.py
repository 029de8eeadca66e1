"""HAProxy in front of several Lectr workers: the one place its configuration is written.

Used by scripts/workers.sh (through `lectr haproxy-config`) and by the tests' harness.
TCP mode: HAProxy passes bytes through untouched, so base_url requests and HTTPS_PROXY
tunnels (CONNECT, then TLS with mitmproxy's CA) both reach a worker as they were sent,
and a client connection stays with the worker it was given. `balance leastconn` gives a
new connection to the worker with the fewest open ones: LLM requests last from
milliseconds to minutes, so taking turns would pile slow ones up on one worker.

The workers listen on HAProxy's own port at other loopback addresses (127.0.0.2, 127.0.0.3,
...). A request for Lectr itself (`GET /healthz`, a path that is no LLM API) names HAProxy's
address in its Host header, and a worker takes it as its own only on the same port: on
any other port it would forward the request to that address, into HAProxy and back to a
worker, again and again. On the same port mitmproxy also refuses to connect to it.
"""

from __future__ import annotations

# Longer than lectr_upstream_timeout's 600 s default: a slow model's silence is not a dead connection.
IDLE_TIMEOUT = "15m"


def worker_addresses(port: int, count: int) -> list[str]:
    """Where `count` workers listen behind HAProxy on 127.0.0.1:port: 127.0.0.2:port, 127.0.0.3:port, ..."""
    if not 1 <= count <= 250:
        raise ValueError(f"between 1 and 250 workers, not {count}")
    return [f"127.0.0.{i}:{port}" for i in range(2, count + 2)]


def config(port: int, backends: list[str | int], host: str = "127.0.0.1") -> str:
    """HAProxy configuration: listen on host:port, spread connections over the workers at `backends`.

    A backend is "address:port", or a port on 127.0.0.1.
    """
    if not backends:
        raise ValueError("at least one backend is needed")
    servers = "\n".join(
        f"    server worker-{i} {b if ':' in str(b) else f'127.0.0.1:{b}'} check inter 5s"
        for i, b in enumerate(backends, 1)
    )
    return f"""\
# Written by Lectr (lectr/admin/haproxy.py); regenerated on every start of scripts/workers.sh.
defaults
    mode tcp
    timeout connect 5s
    timeout client {IDLE_TIMEOUT}
    timeout server {IDLE_TIMEOUT}
    # A worker that refuses the connection (stopped, restarting): try another one.
    retries 2
    option redispatch

frontend lectr
    bind {host}:{port}
    default_backend lectr_workers

backend lectr_workers
    balance leastconn
    # A worker is in rotation while it accepts connections.
{servers}
"""
