"""The addons' hooks in mitmproxy's own test context: what each leaves on the flow's record."""

from __future__ import annotations

import json

import pytest
from mitmproxy import http
from mitmproxy.test import taddons, tutils

from lectr.common.keys import generate_key
from lectr.proxy.addons import PRESENTED_KEY, RECORD
from lectr.proxy.addons.auth import Auth
from lectr.proxy.addons.gateway import Gateway
from lectr.proxy.addons.router import Router
from lectr.proxy.addons.streamtap import StreamTap
from lectr.proxy.addons.streamusage import with_usage_requested
from lectr.proxy.flowrecord import FlowRecord
from lectr.store import open_store

from helpers import chat_flow

RULES = """
rules:
  - {name: bot to mini, priority: 1, match: {feature: bot}, target: {model: gpt-4o-mini}}
  - name: sums to groq
    priority: 2
    match: {task: summarisation}
    target: {provider: groq, model: llama-3.1-8b-instant}
"""


@pytest.fixture
def router(tmp_path, monkeypatch):
    monkeypatch.setenv("LECTR_OPENAI_BASE_URL", "http://sim:9000/v1")
    monkeypatch.setenv("LECTR_GROQ_BASE_URL", "http://sim:9000/openai/v1")
    (tmp_path / "rules.yaml").write_text(RULES)
    addon = Router()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, lectr_rules=str(tmp_path / "rules.yaml"), lectr_secrets=str(tmp_path / "none.yaml"))
        yield addon


def routed(router: Router, flow: http.HTTPFlow, **record_fields) -> FlowRecord:
    record = FlowRecord("base_url", org_id="acme", **record_fields)
    flow.metadata[RECORD] = record
    router.request(flow)
    return record


AZURE_SECRETS = "providers:\n  azure: {api_key: az-key, endpoint: 'http://az:9000', deployments: {gpt-4.1: prod-41}}\n"


def routed_with_files(tmp_path, rules: str, secrets: str, flow: http.HTTPFlow) -> FlowRecord:
    """`flow` through a Router of its own, configured with these rules and secrets files."""
    (tmp_path / "rules.yaml").write_text(rules)
    (tmp_path / "secrets.yaml").write_text(secrets)
    addon = Router()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, lectr_rules=str(tmp_path / "rules.yaml"), lectr_secrets=str(tmp_path / "secrets.yaml"))
        return routed(addon, flow)


def test_router_records_rewrite_and_rule(router):
    flow = chat_flow({"model": "gpt-4o", "messages": []})
    record = routed(router, flow, feature="bot")
    assert (record.provider, record.model_requested, record.model_actual) == ("openai", "gpt-4o", "gpt-4o-mini")
    assert (record.rule_id, record.rule_name, record.route_skip_reason) == ("bot-to-mini", "bot to mini", None)
    assert json.loads(flow.request.content)["model"] == "gpt-4o-mini"
    assert flow.request.url == "http://sim:9000/v1/chat/completions"
    assert flow.request.headers["authorization"] == "Bearer sk-client"


def test_router_records_a_skipped_switch(router):
    flow = chat_flow({"model": "gpt-4o", "messages": []})
    record = routed(router, flow, task="summarisation")
    assert (record.provider, record.model_actual, record.rule_id) == ("openai", "gpt-4o", None)
    assert "no groq key configured for org 'acme'" in record.route_skip_reason
    assert flow.request.content == json.dumps({"model": "gpt-4o", "messages": []}).encode()  # byte for byte


def test_router_flags_unknown_providers_and_defaults_to_openai(router):
    flow = chat_flow({"model": "my-finetune", "messages": [], "stream": True})
    record = routed(router, flow)
    assert (record.provider, record.provider_unknown, record.streaming) == ("openai", True, True)
    assert flow.request.host == "sim"


def test_router_error_degrades_to_passthrough(router, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("rule evaluation blew up")

    monkeypatch.setattr("lectr.proxy.addons.router.choose_route", broken)
    body = json.dumps({"model": "gpt-4o", "messages": []}).encode()
    flow = chat_flow(body)
    record = routed(router, flow, feature="bot")
    assert flow.response is None
    assert flow.request.content == body and flow.request.headers["authorization"] == "Bearer sk-client"
    assert flow.request.url == "http://sim:9000/v1/chat/completions"
    assert "rule evaluation blew up" in record.passthrough_reason


def test_gateway_admits_api_paths_and_strips_lectr_headers():
    gateway = Gateway()
    with taddons.context(gateway):
        flow = chat_flow(
            {"model": "gpt-4o"}, **{"X-Lectr-Key": "lk_a_b", "X-Lectr-Feature": "bot", "X-Lectr-Task": "x"}
        )
        gateway.requestheaders(flow)
        record = flow.metadata[RECORD]
        assert (record.mode, record.feature, record.task) == ("base_url", "bot", "x")
        assert flow.metadata[PRESENTED_KEY] == "lk_a_b"
        assert not [h for h in flow.request.headers if h.lower().startswith("x-lectr")]

        proxied = chat_flow({"model": "gpt-4o"}, host="api.anthropic.com", port=443, path=b"/v1/messages")
        gateway.requestheaders(proxied)
        assert (proxied.metadata[RECORD].mode, proxied.metadata[RECORD].provider) == ("proxy", "anthropic")

        elsewhere = chat_flow({}, host="example.com", port=80, path=b"/index.html", **{"X-Lectr-Feature": "f"})
        gateway.requestheaders(elsewhere)
        assert RECORD not in elsewhere.metadata and elsewhere.request.headers["X-Lectr-Feature"] == "f"


def test_auth_sets_org_or_answers_401(tmp_path):
    db = tmp_path / "k.duckdb"
    key = generate_key()
    open_store(db).insert_key("acme", key)
    auth = Auth()
    with taddons.context(auth) as tctx:
        tctx.configure(auth, lectr_db=str(db))
        good, bad = chat_flow({}), chat_flow({})
        for flow, presented in ((good, key.key), (bad, "lk_x_y")):
            flow.metadata[RECORD] = FlowRecord("base_url")
            flow.metadata[PRESENTED_KEY] = presented
            auth.request(flow)
            assert PRESENTED_KEY not in flow.metadata  # the key does not linger on the flow
        assert good.metadata[RECORD].org_id == "acme" and good.response is None
        assert bad.response.status_code == 401 and bad.metadata[RECORD].org_id is None
        assert json.loads(bad.response.content)["error"]["type"] == "authentication_error"


def test_streamtap_passes_chunks_unchanged_and_keeps_a_copy():
    tap = StreamTap()
    flow = chat_flow({})
    flow.metadata[RECORD] = record = FlowRecord("base_url")
    flow.response = tutils.tresp(headers=http.Headers(content_type="text/event-stream"))
    tap.responseheaders(flow)
    chunks = [b"data: {}\n\n", b"data: [DONE]\n\n"]
    assert [flow.response.stream(c) for c in chunks + [b""]] == chunks + [b""]
    assert record.streaming and record.chunk_count == 2 and bytes(record.stream_copy) == b"".join(chunks)
    assert record.t_first_chunk <= record.t_last_chunk


def test_stream_usage_is_asked_for_only_when_the_body_can_carry_it_faithfully():
    assert with_usage_requested(b'{"model": "gpt-4o", "stream": true}') == (
        b'{"model": "gpt-4o", "stream": true, "stream_options": {"include_usage": true}}'
    )
    # A number JSON cannot round-trip, or duplicate keys: forwarded as sent, not as 'Infinity'.
    assert with_usage_requested(b'{"model": "gpt-4o", "stream": true, "x": 1e400}') is None
    assert with_usage_requested(b'{"model": "a", "model": "b", "stream": true}') is None
    assert (
        with_usage_requested(b'{"model": "gpt-4o", "stream": true, "stream_options": {"include_usage": true}}') is None
    )


def test_a_broken_tiers_file_is_refused_with_its_name(tmp_path):
    from mitmproxy import exceptions

    from lectr.proxy.addons.schedule import Schedule

    tiers = tmp_path / "tiers.yaml"
    tiers.write_text("tiers: [not, a, mapping]\n")
    addon = Schedule()
    with taddons.context(addon) as tctx:
        with pytest.raises(exceptions.OptionsError, match=str(tiers)):
            tctx.configure(addon, lectr_tiers=str(tiers))
        tiers.write_text("tiers:\n  openai: [[pro], [mini]]\n")
        tctx.configure(addon, lectr_tiers=str(tiers))  # a good file is taken
        assert tctx.options.lectr_tiers == str(tiers)


def test_router_keeps_the_original_request_of_a_routed_one(router):
    flow = chat_flow({"model": "gpt-4o", "messages": []})
    sent = flow.request.content
    record = routed(router, flow, feature="bot")
    original = record.original
    assert original is not None and original.rule_id == "bot-to-mini" and original.model == "gpt-4o"
    assert original.content == sent and original.provider == "openai"
    assert original.address == ("http", "127.0.0.1", 8080)  # as the client addressed it
    flow.request.headers.fields = original.fields  # as Fallback does, before it asks for the plan
    plan = original.replan()
    assert plan.url == "http://sim:9000/v1/chat/completions" and plan.provider == "openai"
    assert plan.key == "sk-client"  # the client's own credentials, as without the rule
    assert dict(original.fields)[b"authorization"] == b"Bearer sk-client"


def test_router_keeps_nothing_for_a_request_no_rule_changed(router):
    assert routed(router, chat_flow({"model": "gpt-4o", "messages": []})).original is None


def test_the_path_decides_the_provider_over_the_model(router):
    flow = chat_flow({"model": "openai/gpt-oss-120b", "messages": []}, path=b"/openai/v1/chat/completions")
    record = routed(router, flow)
    assert record.provider == "groq" and flow.request.url == "http://sim:9000/openai/v1/chat/completions"


def test_a_responses_request_switched_to_azure_names_the_deployment_in_its_body(tmp_path, monkeypatch):
    monkeypatch.setenv("LECTR_OPENAI_BASE_URL", "http://sim:9000/v1")
    target = "{provider: azure, model: gpt-4.1}"
    rules = f"rules:\n  - {{name: to azure, priority: 1, match: {{model: gpt-4o}}, target: {target}}}\n"
    flow = chat_flow({"model": "gpt-4o", "input": "hi"}, path=b"/v1/responses")
    record = routed_with_files(tmp_path, rules, AZURE_SECRETS, flow)
    assert flow.request.url == "http://az:9000/openai/v1/responses"
    assert json.loads(flow.request.content)["model"] == "prod-41" and flow.request.headers["api-key"] == "az-key"
    assert (record.provider, record.model_actual, record.rule_id) == ("azure", "gpt-4.1", "to-azure")


def test_a_rule_that_keeps_an_azure_request_as_sent_keeps_its_deployment(tmp_path, monkeypatch):
    # The target is the request's own model: planned as no rule, so the deployment the client named
    # stands (not the one the secrets file maps the model to), and there is nothing to fall back to.
    rules = "rules:\n  - {name: keep, priority: 1, match: {model: gpt-4.1}, target: {model: gpt-4.1}}\n"
    path = b"/openai/deployments/client-41/chat/completions?api-version=2024-10-21"
    flow = chat_flow({"model": "gpt-4.1", "messages": []}, path=path)
    record = routed_with_files(tmp_path, rules, AZURE_SECRETS, flow)
    assert flow.request.url == "http://az:9000/openai/deployments/client-41/chat/completions?api-version=2024-10-21"
    assert (record.rule_id, record.rule_changed, record.original) == ("keep", False, None)
