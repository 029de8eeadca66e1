"""Fallback in mitmproxy's test context: its options, the decision to send the original request,
and what the record keeps of the failed attempt."""

from __future__ import annotations

import json

import pytest
from mitmproxy import exceptions, http
from mitmproxy.addons.proxyserver import Proxyserver
from mitmproxy.test import taddons

from lectr.proxy.addons.fallback import Fallback
from lectr.proxy.addons.router import Router
from lectr.proxy.addons.upstream import UpstreamGuard
from lectr.proxy.rulehealth import Policy

from helpers import chat_flow, cut_when_due, recorded

RULES = "rules:\n  - {name: to mini, priority: 1, match: {model: gpt-4o}, target: {model: gpt-4o-mini}}\n"
NOT_FOUND = json.dumps({"error": {"code": "model_not_found", "message": "no such model"}}).encode()


@pytest.fixture
def addons(monkeypatch, tmp_path):
    """A Router and a Fallback sharing the rules' health, as addons/lectr.py composes them (with the
    UpstreamGuard, whose time limit a fallback sets again for the new attempt)."""
    monkeypatch.setenv("LECTR_OPENAI_BASE_URL", "http://sim:9000/v1")
    (tmp_path / "rules.yaml").write_text(RULES)
    fallback = Fallback()
    router = Router(fallback.health)
    with taddons.context(Proxyserver(), router, UpstreamGuard(), fallback) as tctx:
        tctx.configure(router, lectr_rules=str(tmp_path / "rules.yaml"), lectr_secrets=str(tmp_path / "none.yaml"))
        yield tctx, router, fallback
        fallback.done()


def routed_flow(router: Router, body: dict | None = None):
    flow = chat_flow(body or {"model": "gpt-4o", "messages": []})
    record = recorded(flow, org_id="acme")
    router.request(flow)
    assert record.original is not None
    return flow, record


class TestFallbackOptions:
    def test_a_negative_time_limit_is_refused_with_how_to_turn_it_off(self, addons):
        tctx, _, fallback = addons
        with pytest.raises(
            exceptions.OptionsError,
            match=r"^lectr_fallback_timeout_ms must be a whole number of milliseconds >= 0, got -5: "
            r"set it to 0 to turn the timeout off$",
        ):
            tctx.configure(fallback, lectr_fallback_timeout_ms=-5)
        with pytest.raises(exceptions.OptionsError, match="lectr_fallback_full_timeout_ms must be a whole number"):
            tctx.configure(fallback, lectr_fallback_full_timeout_ms=-1)

    def test_the_suspension_policy_is_checked_option_by_option_and_applied(self, addons):
        tctx, _, fallback = addons
        assert fallback.health.policy == Policy()  # the options' defaults are the policy's
        with pytest.raises(exceptions.OptionsError, match=r"lectr_rule_suspend_after must be .* >= 1, got 0: e\.g\. 3"):
            tctx.configure(fallback, lectr_rule_suspend_after=0)
        with pytest.raises(exceptions.OptionsError, match=r"lectr_rule_cooldown must be a whole number of seconds"):
            tctx.configure(fallback, lectr_rule_cooldown=0)
        tctx.configure(fallback, lectr_rule_suspend_after=2, lectr_rule_suspend_window=30, lectr_rule_cooldown=10)
        assert fallback.health.policy == Policy(2, 30, 10)


class TestFallback:
    async def test_a_failed_target_sends_the_original_and_the_record_keeps_the_failed_attempt(self, addons):
        _, router, fallback = addons
        body = {"model": "gpt-4o", "messages": [], "stream": True}
        flow, record = routed_flow(router, body)
        assert json.loads(flow.request.content)["model"] == "gpt-4o-mini"
        record.usage_injected = True  # as StreamUsage would have asked the target for usage
        flow.response = http.Response.make(404, NOT_FOUND, {"content-type": "application/json"})

        assert fallback.resend(flow, None) is True
        assert flow.request.content == json.dumps(body).encode()  # as the client sent it
        assert (record.fallback_model, record.fallback_status) == ("gpt-4o-mini", 404)
        assert record.fallback_error == "404 model_not_found: no such model" and record.fallback_ms > 0
        assert (record.rule_id, record.skipped_rule_id, record.model_actual) == (None, "to-mini", "gpt-4o")
        assert record.original is None and record.usage_injected is False
        assert fallback.status() == {"fallbacks": 1, "rules_suspended": 0}
        assert len(fallback.deadlines) == 1  # the provider's time limit, again, for the new attempt
        assert fallback.resend(flow, None) is False  # one fallback per request

    async def test_an_answer_that_needs_no_fallback_lets_the_original_go(self, addons):
        _, router, fallback = addons
        flow, record = routed_flow(router)
        fallback.request(flow)
        flow.response = http.Response.make(200, b"{}", {"content-type": "application/json"})
        fallback.responseheaders(flow)
        assert record.original is None and len(fallback.deadlines) == 0
        assert fallback.resend(flow, None) is False and record.fallback_model is None

    async def test_no_fallback_once_the_providers_time_limit_is_over(self, addons):
        _, router, fallback = addons
        flow, record = routed_flow(router)
        record.timed_out = True  # UpstreamGuard's deadline passed
        assert fallback.resend(flow, "connection cancelled") is False
        assert record.original is None and record.fallback_model is None and record.rule_id == "to-mini"

    async def test_a_target_without_headers_in_time_is_cut_and_the_reason_recorded(self, addons):
        tctx, router, fallback = addons
        tctx.configure(fallback, lectr_fallback_full_timeout_ms=20)
        flow, record = routed_flow(router)
        assert await cut_when_due(tctx, flow, "server_conn", fallback.request) == b""  # EOF at the target's end
        assert record.fallback_timed_out is True and len(fallback.deadlines) == 0
        assert fallback.resend(flow, "connection cancelled") is True
        assert record.fallback_error == "no response headers within 20 ms" and record.fallback_status is None
