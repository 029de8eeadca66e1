"""Shadow in mitmproxy's test context: which finished flows it samples for an experiment, and the
order a sampled one carries (the writer process's runner is not started)."""

from __future__ import annotations

import pytest
from mitmproxy import http
from mitmproxy.test import taddons

from lectr.proxy.addons.routefiles import RouteFiles
from lectr.proxy.addons.shadow import Shadow

from helpers import chat_flow, recorded, refused

EXPERIMENTS = """
experiments:
  - name: triage
    org: acme
    match: {feature: triage, model: gpt-4o}
    candidate: {model: gpt-4o-mini}
    sample_rate: 1.0
  - name: groq for globex
    org: globex
    candidate: {model: llama-3.1-8b-instant, provider: groq}
    sample_rate: 1.0
"""


@pytest.fixture
def shadow(tmp_path):
    (tmp_path / "experiments.yaml").write_text(EXPERIMENTS)
    (tmp_path / "secrets.yaml").write_text("providers: {openai: {api_key: sk-lectr-own}}")
    files = RouteFiles()
    addon = Shadow(files)
    with taddons.context(files, addon) as tctx:
        tctx.configure(files, lectr_rules=str(tmp_path / "rules.yaml"), lectr_secrets=str(tmp_path / "secrets.yaml"))
        tctx.configure(addon, lectr_rules=str(tmp_path / "rules.yaml"))  # experiments.yaml beside it
        yield tctx, addon


def answered(status: int = 200, org: str = "acme", feature: str = "triage", model: str = "gpt-4o") -> http.HTTPFlow:
    flow = chat_flow({"model": model, "messages": []})
    recorded(
        flow, org_id=org, feature=feature, task="classification", endpoint="/chat/completions",
        route_provider="openai", model_requested=model, model_actual=model,
    )  # fmt: skip
    flow.response = http.Response.make(status, b"{}", {"content-type": "application/json"})
    return flow


def test_an_answered_request_an_experiment_matches_gets_an_order_with_lectrs_own_key(shadow):
    _, addon = shadow
    flow = answered()
    addon.response(flow)
    order = flow.metadata["lectr.record"].shadow
    assert (order.experiment_id, order.provider, order.model, order.blocked) == (
        "triage",
        "openai",
        "gpt-4o-mini",
        None,
    )
    assert order.url.endswith("/v1/chat/completions")
    assert ("authorization", "Bearer sk-lectr-own") in order.headers
    assert "sk-client" not in repr(order.headers)  # the client's key stays the client's
    assert addon.status() == {"shadow_sampled": 1, "experiments_running": 2}


@pytest.mark.parametrize(
    "flow",
    [
        pytest.param(lambda: answered(status=500), id="the provider failed"),
        pytest.param(lambda: answered(feature="other"), id="no experiment matches"),
        pytest.param(lambda: answered(model="gpt-4o-2024-08-06"), id="another model"),
        pytest.param(lambda: answered(org=None), id="no org"),
    ],
)
def test_nothing_else_is_sampled(shadow, flow):
    _, addon = shadow
    made = flow()
    addon.response(made)
    assert made.metadata["lectr.record"].shadow is None and addon.sampled == 0


def test_without_a_key_of_lectrs_the_order_says_why_instead(shadow):
    _, addon = shadow
    flow = answered(org="globex", feature="anything")
    addon.response(flow)
    order = flow.metadata["lectr.record"].shadow
    assert order.url == "" and "Lectr has no groq key of its own for org 'globex'" in order.blocked


def test_the_shadow_queue_and_concurrency_must_be_at_least_one(shadow):
    tctx, addon = shadow
    refused(tctx, addon, r"^lectr_shadow_queue must be a whole number of samples >= 1", lectr_shadow_queue=0)
    refused(
        tctx, addon, r"^lectr_shadow_concurrency must be a whole number of requests >= 1", lectr_shadow_concurrency=0
    )
