"""Router: detect the provider, apply the first matching rule, normalise auth, address upstream.

The rules file and the secrets file are compiled off the hot path and swapped in whole
(lectr.proxy.addons.routefiles); a request only reads them. Whatever goes wrong while
routing, the request is forwarded unchanged: routing can never block or break a request.

Router writes what the record says about the route; when Fallback sends the original request
instead, it does so through `send_original` here, which records the route it now takes.
"""

from __future__ import annotations

import functools
import logging
import time

from mitmproxy import http

from lectr.common import providers
from lectr.common.decompress import DECODED_LIMIT, decoded
from lectr.common.jsonbody import parse_json, rewrite_json, unreadable_reason
from lectr.proxy.addons import pending_record, respond_error, timed
from lectr.proxy.addons.routefiles import RouteFiles
from lectr.proxy.credentials import DEFAULT_AZURE_API_VERSION
from lectr.proxy.endpoints import RESPONSES, Endpoint, parse_path, split_url, upstream_url
from lectr.proxy.flowrecord import FlowRecord
from lectr.proxy.headers import client_credential, invalid_field, with_provider_auth
from lectr.proxy.routing import Original, Plan, Route, choose_route
from lectr.proxy.rulehealth import RuleHealth

log = logging.getLogger(__name__)


class Router:
    def __init__(self, health: RuleHealth | None = None) -> None:
        self.health = health or RuleHealth()  # shared with Fallback, which reports each rule's failures
        self.files = RouteFiles()  # rules, secrets, base URLs: their options, reloads and checks
        self.addons = [self.files]

    @timed
    def request(self, flow: http.HTTPFlow) -> None:
        record = pending_record(flow)
        if record is None or record.org_id is None:
            return
        # Checked here, where Lectr's own traffic is about to go upstream: mitmproxy checks
        # header names only, and passes CR and NUL in values on (see headers.invalid_field).
        bad = invalid_field(flow.request.headers.fields)
        if bad is not None:
            respond_error(
                flow,
                400,
                "invalid_header",
                f"the value of header {bad.decode('ascii', 'replace')!r} contains CR, LF or NUL, "
                "which HTTP does not allow; Lectr does not forward it",
            )
            return
        try:
            plan = self._plan(flow, record)
            if plan is not None:
                apply_plan(flow.request, plan)
            return
        except Exception as e:  # routing must never break a request
            log.exception("routing failed; forwarding unchanged")
            record.passthrough_reason = f"routing error: {e!r}"
            plan = self._passthrough_plan(flow, record)
        if plan is None:
            return
        apply_plan(flow.request, plan)

    def _plan(self, flow: http.HTTPFlow, record: FlowRecord) -> Plan | None:
        request = flow.request
        endpoint = parse_path(request.path)
        record.endpoint = endpoint.suffix if endpoint else None
        data = _read_body(request, record) if endpoint else None
        body = parse_json(data)
        if data and body is None:
            record.passthrough_reason = unreadable_reason(data)  # None: not JSON at all, the client's to fix
        model = body.get("model") if isinstance(body, dict) and isinstance(body.get("model"), str) else None
        record.model_requested = record.model_actual = model
        record.stream_requested = isinstance(body, dict) and body.get("stream") is True
        provider = self._provider(record, endpoint, model)
        # A request that names no model (GET /v1/models) is no failed detection: it goes where its
        # path points. Only a model (or a declared provider) Lectr cannot place is flagged.
        record.provider_unknown = provider is None and (model is not None or record.provider_declared is not None)
        record.route_provider = provider = provider or providers.DEFAULT_PROVIDER
        if endpoint is None:  # a provider path Lectr does not know: leave it exactly as it is
            return None

        credentials = self.files.credentials.value
        route = choose_route(
            self.files.rules.value,
            org=record.org_id,
            feature=record.feature,
            task=record.task,
            provider=provider,
            model=model,
            endpoint=endpoint,
            can_serve=lambda p: credentials.can_serve(record.org_id, p),
            held=self._held,
        )
        # A rule whose target is the request as sent is planned as no rule: it must not pick another
        # Azure deployment for the same model, and it leaves nothing to fall back to.
        planned = route if route.changes(provider, model) else Route(provider, model)
        content = None
        body_model = planned.model
        if planned.rule is not None and planned.provider == "azure" and endpoint.suffix == RESPONSES:
            body_model = self._azure_deployment(record, endpoint, planned)  # Azure's Responses API: in the body
        if body_model != model:
            # The provider gets the client's body with only the model changed, or unchanged.
            content = rewrite_json(data, {"model": body_model})
            if content is None:  # a rule not applied, as one without a key is
                reason = (
                    f"rule {route.rule.id if route.rule else None!r} not applied: the JSON body cannot be "
                    "rewritten without changing more than its model (duplicate keys, or a number out of range)"
                )
                route = planned = Route(provider, model, skip_reason=reason, skipped=route.rule)
        plan = self._route_plan(flow, record, endpoint, planned, provider)
        if planned.rule is not None:  # what to fall back to if the rule's target fails
            replan = functools.partial(self._route_plan, flow, record, endpoint, Route(provider, model), provider)
            address = (request.scheme, request.host, request.port)
            record.original = Original(
                request.headers.fields, request.raw_content, address, provider, model, planned.rule.id, replan
            )
        _note_route(record, route, changed=planned.rule is not None)  # last: a failure above leaves "unchanged"
        return Plan(plan.url, plan.provider, content, plan.key)

    def _route_plan(
        self, flow: http.HTTPFlow, record: FlowRecord, endpoint: Endpoint, route: Route, provider: str
    ) -> Plan:
        """Where `route` sends the request, with which key (the body is the caller's)."""
        credentials = self.files.credentials.value
        url = self._url(flow, record, endpoint, route)
        if route.switches_from(provider):
            key = credentials.api_key(record.org_id, route.provider)
        else:
            key = client_credential(flow.request.headers.fields) or credentials.api_key(record.org_id, route.provider)
        return Plan(url, route.provider, None, key)

    def _held(self, rule_id: str) -> str | None:
        return self.health.skip_reason(rule_id, time.monotonic())

    @staticmethod
    def _provider(record: FlowRecord, endpoint: Endpoint | None, model: str | None) -> str | None:
        """Where the request was going: declared, intercepted host, path, then model; None if unknown."""
        if record.provider_declared:
            if providers.is_provider(record.provider_declared):
                return record.provider_declared
            log.warning("X-Lectr-Provider %r is unknown; detecting from the model", record.provider_declared)
        if record.mode == "proxy" and record.host_provider:
            return record.host_provider
        if endpoint and endpoint.provider:  # a path only one provider uses (Groq's, Gemini's, Azure's, ...)
            return endpoint.provider
        return providers.detect_provider(model) if model else None

    def _url(self, flow: http.HTTPFlow, record: FlowRecord, endpoint: Endpoint, route: Route) -> str:
        if route.provider != "azure":
            return upstream_url(self.files.base_urls[route.provider], route.provider, endpoint)
        settings = self.files.credentials.value.settings(record.org_id, "azure")
        base = settings.endpoint or self.files.base_urls["azure"]
        if not base:
            if record.mode == "proxy":
                base = f"{flow.request.scheme}://{flow.request.host}:{flow.request.port}"
            else:
                raise LookupError(f"no Azure endpoint configured for org {record.org_id!r}")
        deployment = self._azure_deployment(record, endpoint, route)
        return upstream_url(base, "azure", endpoint, settings.api_version or DEFAULT_AZURE_API_VERSION, deployment)

    def _azure_deployment(self, record: FlowRecord, endpoint: Endpoint, route: Route) -> str | None:
        """The deployment that serves `route.model` at Azure (None: the one the client named)."""
        if route.model is None or (route.rule is None and endpoint.deployment is not None):
            return None
        return self.files.credentials.value.settings(record.org_id, "azure").deployments.get(route.model, route.model)

    def _passthrough_plan(self, flow: http.HTTPFlow, record: FlowRecord) -> Plan | None:
        """Forward unchanged. A client that addressed Lectr itself still needs an upstream."""
        if record.mode == "proxy":
            return None
        endpoint = parse_path(flow.request.path)
        provider = record.provider or providers.DEFAULT_PROVIDER
        base = self.files.base_urls.get(provider)
        if endpoint is None or not base:
            respond_error(flow, 502, "routing_failed", f"could not route this request ({record.passthrough_reason})")
            return None
        return Plan(upstream_url(base, provider, endpoint), provider, normalise_auth=False)


def apply_plan(request: http.Request, plan: Plan) -> None:
    """Address the request as `plan` says (its headers and body as they are, but for auth)."""
    # Everything that can fail before anything is changed: a failure forwards unchanged.
    upstream = split_url(plan.url)
    fields = with_provider_auth(request.headers.fields, plan.provider, plan.key) if plan.normalise_auth else None
    if fields is not None:
        request.headers.fields = fields
    if plan.content is not None:  # after the fields: it sets Content-Length
        request.content = plan.content
    # Each of mitmproxy's host and port setters rewrites the Host header; the port goes in
    # first, underneath, so that the host setter writes the header once, with both.
    request.scheme, request.data.port = upstream.scheme, upstream.port
    request.host, request.path = upstream.host, upstream.path


def _read_body(request: http.Request, record: FlowRecord) -> bytes | None:
    """The body as Lectr reads it; when Lectr cannot, the record says why (and it goes unread).

    Decompressed here with a limit: mitmproxy's `content` has none, and a few kilobytes of
    brotli decompress to gigabytes.
    """
    raw = request.raw_content
    encoding = request.headers.get("content-encoding")
    content = decoded(raw, encoding)
    if raw and content is None:
        record.passthrough_reason = (
            f"body not read: its Content-Encoding {encoding!r} is unknown or broken, "
            f"or it decompresses to more than {DECODED_LIMIT // 2**20} MB"
        )
    return content


def _note_route(record: FlowRecord, route: Route, changed: bool) -> None:
    record.rule_changed = changed
    record.route_provider = route.provider
    record.model_actual = route.model
    record.route_skip_reason = route.skip_reason
    if route.rule is not None:
        record.rule_id, record.rule_name = route.rule.id, route.rule.name
    if route.skipped is not None:
        record.skipped_rule_id = route.skipped.id


def drop_original(record: FlowRecord) -> None:
    """Fallback's word: nothing to fall back to any more (answered, or too late)."""
    record.original = None


def send_original(flow: http.HTTPFlow, record: FlowRecord) -> Original:
    """Fallback's fallback: ready the request as the client sent it, addressed as without the rule
    (the client's own credentials), and record the route it now takes. One per request."""
    original = record.original
    assert original is not None
    record.original = None
    request = flow.request
    request.headers.fields = original.fields  # first: the body below keeps their Content-Length
    request.raw_content = original.content
    request.scheme, request.data.host, request.data.port = original.address  # headers untouched
    apply_plan(request, original.replan())  # planned with the client's headers and address back in place
    record.skipped_rule_id, record.rule_id, record.rule_name = original.rule_id, None, None
    record.route_provider, record.model_actual = original.provider, original.model
    return original
