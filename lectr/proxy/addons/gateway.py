"""Gateway: decides which traffic is Lectr's, and reads the X-Lectr-* headers off it.

Two ways in, one listener:
- base_url: the client addresses Lectr itself (`http://127.0.0.1:8080/v1/...`);
- HTTPS_PROXY: the client tunnels to a provider host; only provider hosts are
  intercepted, every other host is tunnelled untouched.
"""

from __future__ import annotations

import asyncio
import json
import logging

from mitmproxy import ctx, http, tls
from mitmproxy.addonmanager import traverse

from lectr.common.providers import provider_for_host
from lectr.proxy.addons import PRESENTED_KEY, RECORD, respond_error, timed
from lectr.proxy.endpoints import parse_path
from lectr.proxy.flowrecord import FlowRecord
from lectr.proxy.headers import split_lectr_headers

log = logging.getLogger(__name__)

HEALTH_PATH = "/healthz"
_LOCAL_NAMES = {"localhost", "127.0.0.1", "::1"}


class Gateway:
    def __init__(self) -> None:
        self.admitted = 0  # requests Lectr took on since start; each ends as one event
        self._moved_to_loopback = False

    def running(self) -> None:
        # mitmproxy 12 brings its listeners up before a script's options apply, so a listener
        # opened on every interface is restarted on loopback here (`--listen-host` avoids it).
        if self._moved_to_loopback and ctx.master.addons.get("proxyserver").is_running:
            log.warning("listening on 127.0.0.1 only (mitmdump --listen-host 127.0.0.1 skips this restart)")
            ctx.options.update(server=False)
            ctx.options.update(server=True)

    def status(self) -> dict[str, int]:
        return {"requests_admitted": self.admitted}

    def configure(self, updated: set[str]) -> None:
        # mitmproxy listens on every interface by default; Lectr serves loopback unless told otherwise.
        if "listen_host" in updated and not ctx.options.listen_host:
            ctx.options.listen_host = "127.0.0.1"
            self._moved_to_loopback = True
        # "eager" would dial the real provider when a client CONNECTs, before Lectr has
        # seen the request and chosen where it really goes.
        if "connection_strategy" in updated and ctx.options.connection_strategy != "lazy":
            ctx.options.connection_strategy = "lazy"

    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        host = data.client_hello.sni or (data.context.server.address or ("",))[0]
        if not provider_for_host(host or ""):
            data.ignore_connection = True

    # At the headers, not the whole request: a client that never finishes its body still
    # gets a record, a time limit (ClientGuard) and an event. An answer given here is
    # sent once the body is in.
    @timed
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or RECORD in flow.metadata:
            return
        try:
            self._admit(flow)
        except Exception:
            log.exception("admitting the request failed")
            if not flow.client_conn.tls and _addressed_to_lectr(flow):
                # Addressed to Lectr itself there is nothing to pass through to; answer
                # rather than let mitmproxy forward the request back to this very port.
                respond_error(flow, 502, "internal_error", "Lectr could not handle this request; see its log")

    def _admit(self, flow: http.HTTPFlow) -> None:
        request = flow.request
        host_provider = provider_for_host(request.host)
        api_path = parse_path(request.path) is not None
        if host_provider:
            record = FlowRecord("proxy", host_provider=host_provider)
        elif not flow.client_conn.tls and (api_path or _addressed_to_lectr(flow)):
            if request.path == HEALTH_PATH:
                flow.response = http.Response.make(200, json.dumps(_health()), {"content-type": "application/json"})
                return
            if not api_path:
                respond_error(
                    flow,
                    404,
                    "unknown_path",
                    f"{request.path!r} is not an LLM API path. Point your SDK's base_url at "
                    "http://HOST:PORT/v1 (OpenAI-style) or http://HOST:PORT (Anthropic).",
                )
                return
            record = FlowRecord("base_url")
        else:
            return  # plain proxy traffic to some other host: not Lectr's business
        meta, request.headers.fields = split_lectr_headers(request.headers.fields)
        record.feature, record.task, record.provider_declared = meta.feature, meta.task, meta.provider
        flow.metadata[RECORD] = record
        self.admitted += 1
        flow.metadata[PRESENTED_KEY] = meta.key


def _health() -> dict[str, object]:
    """Liveness, and the counters that show a leak or a backlog (each Lectr addon's `status()`)."""
    health: dict[str, object] = {
        "status": "ok",
        "connections": ctx.master.commands.call("proxyserver.active_connections"),
        "tasks": len(asyncio.all_tasks()),
    }
    for addon in traverse(ctx.master.addons.chain):  # ours are nested in the script's addon
        status = getattr(addon, "status", None)
        if callable(status):
            health.update(status())
    return health


def _addressed_to_lectr(flow: http.HTTPFlow) -> bool:
    sockname = flow.client_conn.sockname
    return flow.request.port == sockname[1] and (flow.request.host in _LOCAL_NAMES or flow.request.host == sockname[0])
