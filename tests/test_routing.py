from lectr.common.rules import parse_rules
from lectr.proxy.endpoints import parse_path
from lectr.proxy.routing import Route, choose_route

RULES = parse_rules(
    """
rules:
  - {name: to groq, priority: 1, match: {task: summarisation}, target: {provider: groq, model: llama-3.1-8b-instant}}
  - {name: to mini, priority: 2, match: {feature: bot}, target: {model: gpt-4o-mini}}
  - {name: claude to haiku, priority: 3, match: {provider: anthropic}, target: {model: claude-haiku-4-5}}
"""
)
CHAT = parse_path("/v1/chat/completions")
MESSAGES = parse_path("/v1/messages")


def route(can_serve=lambda p: True, **facts):
    defaults = dict(org="acme", feature=None, task=None, provider="openai", model="gpt-4o", endpoint=CHAT)
    return choose_route(RULES, can_serve=can_serve, **{**defaults, **facts})


def test_no_match_forwards_unchanged():
    assert route(feature="other") == Route("openai", "gpt-4o")


def test_model_rewrite_within_provider():
    r = route(feature="bot")
    assert (r.provider, r.model, r.rule.name, r.skip_reason) == ("openai", "gpt-4o-mini", "to mini", None)
    assert not r.switches_from("openai")


def test_provider_switch_needs_a_key_for_the_target():
    r = route(task="summarisation")
    assert (r.provider, r.model, r.rule.name) == ("groq", "llama-3.1-8b-instant", "to groq")
    assert r.switches_from("openai")

    r = route(task="summarisation", can_serve=lambda p: p != "groq")
    assert (r.provider, r.model, r.rule) == ("openai", "gpt-4o", None)
    assert "no groq key configured for org 'acme'" in r.skip_reason


def test_native_anthropic_messages_stay_within_anthropic():
    r = route(task="summarisation", provider="anthropic", model="claude-sonnet-4-5", endpoint=MESSAGES)
    assert (r.provider, r.model, r.rule) == ("anthropic", "claude-sonnet-4-5", None)
    assert "native Anthropic" in r.skip_reason
    # A same-provider rewrite of native traffic is fine.
    r = route(provider="anthropic", model="claude-sonnet-4-5", endpoint=MESSAGES)
    assert (r.provider, r.model, r.rule.name) == ("anthropic", "claude-haiku-4-5", "claude to haiku")


def test_requests_without_model_or_on_other_endpoints_are_not_routed():
    assert route(feature="bot", model=None) == Route("openai", None)
    assert route(feature="bot", endpoint=parse_path("/v1/embeddings")) == Route("openai", "gpt-4o")


def test_a_rule_changes_the_request_only_when_its_target_differs():
    (rule,) = parse_rules("rules:\n  - {name: keep, priority: 1, target: {model: o3}}\n").rules
    assert not Route("openai", "o3", rule).changes("openai", "o3")  # first match that keeps o3 on o3
    assert Route("openai", "gpt-4.1", rule).changes("openai", "o3")
    assert Route("groq", "o3", rule).changes("openai", "o3")
    assert not Route("groq", "gpt-4.1").changes("openai", "o3")  # no rule applied: nothing it changed
