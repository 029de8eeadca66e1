"""Router (and the RouteFiles it nests) in mitmproxy's test context: its options, and what it records."""

from __future__ import annotations

import pytest
from mitmproxy import exceptions
from mitmproxy.test import taddons

from lectr.proxy.addons.router import Router, send_original

from helpers import chat_flow, recorded

TO_MINI = "rules:\n  - {name: to mini, priority: 1, match: {model: gpt-4o}, target: {model: gpt-4o-mini}}\n"
TO_AZURE = (
    "rules:\n  - {name: to azure, priority: 1, match: {model: gpt-4o}, target: {provider: azure, model: gpt-4.1}}"
)


@pytest.fixture
def files(tmp_path):
    """Writes the rules and secrets files; returns the options that name them."""

    def write(rules: str = TO_MINI, secrets: str = "") -> dict[str, str]:
        (tmp_path / "rules.yaml").write_text(rules)
        (tmp_path / "secrets.yaml").write_text(secrets)
        return {"lectr_rules": str(tmp_path / "rules.yaml"), "lectr_secrets": str(tmp_path / "secrets.yaml")}

    return write


def route(router: Router, flow, **fields):
    record = recorded(flow, org_id="acme", **fields)
    router.request(flow)
    return record


class TestRouterOptions:
    @pytest.mark.parametrize("value", ["api.groq.com/openai/v1", "ftp://x/v1", ""])
    def test_a_base_url_that_is_no_http_url_is_refused_with_an_example(self, value):
        router = Router()
        with taddons.context(router) as tctx:
            with pytest.raises(
                exceptions.OptionsError,
                match=rf"lectr_groq_base_url must be an http:// or https:// URL, got '{value}': e\.g\. http://",
            ):
                tctx.configure(router, lectr_groq_base_url=value)

    def test_the_environment_is_the_default_and_the_option_wins(self, monkeypatch, files):
        monkeypatch.setenv("LECTR_OPENAI_BASE_URL", "http://from-env:9000/v1/")
        router = Router()
        with taddons.context(router) as tctx:
            assert tctx.options.lectr_openai_base_url == "http://from-env:9000/v1"
            assert tctx.options.lectr_anthropic_base_url == "https://api.anthropic.com"
            assert tctx.options.lectr_azure_base_url == ""  # Azure has no global endpoint
            tctx.configure(router, lectr_openai_base_url="http://from-option:9001/v1/", **files())
            flow = chat_flow({"model": "gpt-4o", "messages": []})
            route(router, flow)
            assert flow.request.url == "http://from-option:9001/v1/chat/completions"

    def test_the_azure_options_stand_for_the_azure_variables(self, monkeypatch, files):
        monkeypatch.delenv("LECTR_AZURE_BASE_URL", raising=False)
        monkeypatch.setenv("LECTR_AZURE_API_KEY", "az-key")  # a key, but no endpoint in the environment
        router = Router()
        with taddons.context(router) as tctx:
            tctx.configure(router, **files(TO_AZURE, "providers:\n  azure: {deployments: {gpt-4.1: prod-41}}\n"))
            record = route(router, chat_flow({"model": "gpt-4o", "messages": []}))
            assert record.rule_id is None and "no azure key configured" in record.route_skip_reason
            tctx.configure(router, lectr_azure_base_url="http://az:9000", lectr_azure_api_version="2025-01-01")
            flow = chat_flow({"model": "gpt-4o", "messages": []})
            record = route(router, flow)
        assert (record.rule_id, record.provider, record.model_actual) == ("to-azure", "azure", "gpt-4.1")
        assert flow.request.url == "http://az:9000/openai/deployments/prod-41/chat/completions?api-version=2025-01-01"
        assert flow.request.headers["api-key"] == "az-key"


class TestRouterRecord:
    @pytest.fixture
    def router(self, monkeypatch, files):
        monkeypatch.setenv("LECTR_OPENAI_BASE_URL", "http://sim:9000/v1")
        addon = Router()
        with taddons.context(addon) as tctx:
            tctx.configure(addon, **files())
            yield addon

    def test_a_body_lectr_would_not_rewrite_faithfully_is_a_skipped_rule_not_a_passthrough(self, router):
        body = b'{"model": "gpt-4o", "messages": [], "x": 1e400}'
        flow = chat_flow(body)
        record = route(router, flow)
        assert flow.request.content == body
        assert (record.rule_id, record.skipped_rule_id, record.model_actual) == (None, "to-mini", "gpt-4o")
        assert record.route_skip_reason.startswith("rule 'to-mini' not applied: the JSON body cannot be rewritten")
        assert record.passthrough_reason is None and record.original is None and not record.rule_changed

    def test_a_body_lectr_cannot_read_is_passed_through_and_says_why(self, router):
        flow = chat_flow(b"\x00not gzip at all", **{"content-encoding": "gzip"})
        record = route(router, flow)
        assert record.passthrough_reason.startswith("body not read: its Content-Encoding 'gzip' is unknown or broken")
        assert record.rule_id is None and record.skipped_rule_id is None and record.route_skip_reason is None
        assert flow.request.url == "http://sim:9000/v1/chat/completions"

    def test_send_original_puts_the_request_back_and_records_the_route_it_now_takes(self, router):
        flow = chat_flow({"model": "gpt-4o", "messages": [], "stream": True})
        sent = flow.request.content
        record = route(router, flow)
        assert (record.rule_id, record.model_actual, record.stream_requested) == ("to-mini", "gpt-4o-mini", True)
        flow.request.url = "http://elsewhere:1/v1/chat/completions"  # as a failed attempt might leave it
        original = send_original(flow, record)
        assert original.rule_id == "to-mini" and record.original is None  # one fallback per request
        assert flow.request.content == sent and flow.request.url == "http://sim:9000/v1/chat/completions"
        assert (record.rule_id, record.rule_name, record.skipped_rule_id) == (None, None, "to-mini")
        assert (record.provider, record.model_actual, record.rule_changed) == ("openai", "gpt-4o", True)

    def test_a_proxied_request_starts_from_the_intercepted_hosts_provider(self, router):
        path = b"/openai/v1/chat/completions"
        flow = chat_flow({"model": "my-model", "messages": []}, host="api.groq.com", port=443, path=path)
        record = route(router, flow, mode="proxy", host_provider="groq")
        assert (record.route_provider, record.provider, record.provider_unknown) == ("groq", "groq", False)
        assert flow.request.url == "https://api.groq.com/openai/v1/chat/completions"
