"""The experiments file (lectr/common/experiments.py) and the order a sampled request gets
(lectr/proxy/shadoworders.py): plain functions."""

from __future__ import annotations

import pytest

from lectr.common.experiments import (
    MAX_REQUESTS_PER_DAY,
    SAMPLE_RATE,
    ExperimentError,
    experiments_path,
    parse_experiments,
)
from lectr.proxy.credentials import parse_credentials
from lectr.proxy.shadoworders import shadow_order

DOC = """
experiments:
  - name: acme triage on mini
    org: acme
    match: {feature: Triage, task: classification, provider: openai, model: gpt-4o}
    candidate: {model: gpt-4o-mini}
    sample_rate: 0.25
    max_requests_per_day: 50
    max_usd_per_day: 0.5
  - name: stopped one
    enabled: false
    match: {feature: triage}
    candidate: {model: gpt-4.1-nano}
  - name: anything of globex on groq
    org: globex
    candidate: {model: llama-3.1-8b-instant, provider: Groq}
"""
BASE_URLS = {"openai": "http://sim/v1", "anthropic": "http://sim", "groq": "http://sim/openai/v1", "azure": ""}


def test_an_experiment_reads_as_written_with_defaults_for_what_it_leaves_out():
    first, stopped, globex = parse_experiments(DOC).experiments
    assert (first.id, first.org, first.feature, first.task, first.provider, first.model) == (
        "acme-triage-on-mini", "acme", "triage", "classification", "openai", "gpt-4o",
    )  # fmt: skip
    assert (first.candidate_provider, first.candidate_model) == (None, "gpt-4o-mini")
    assert (first.sample_rate, first.max_requests_per_day, first.max_usd_per_day) == (0.25, 50, 0.5)
    assert not stopped.enabled and stopped.sample_rate == SAMPLE_RATE
    assert globex.max_requests_per_day == MAX_REQUESTS_PER_DAY and globex.candidate_provider == "groq"


def test_a_request_falls_in_the_first_enabled_experiment_whose_conditions_hold_as_a_rules_do():
    experiments = parse_experiments(DOC)
    assert experiments.first_match("acme", "TRIAGE", "Classification", "openai", "gpt-4o").id == "acme-triage-on-mini"
    assert experiments.first_match("acme", "triage", "extraction", "openai", "gpt-4o") is None  # the stopped one too
    assert experiments.first_match("acme", "triage", None, "openai", "gpt-4o-2024-08-06") is None  # models exactly
    assert experiments.first_match("globex", None, None, "anthropic", "claude-x").id == "anything-of-globex-on-groq"
    assert [e.id for e in experiments.running] == ["acme-triage-on-mini", "anything-of-globex-on-groq"]


@pytest.mark.parametrize(
    "item, message",
    [
        ("{name: a}", "'candidate' is required"),
        ("{name: a, candidate: {model: m, temperature: 0}}", "candidate has the fields model and provider only"),
        ("{name: a, candidate: {model: m, provider: acme-ai}}", "candidate.provider 'acme-ai' is unknown"),
        ("{name: a, candidate: {model: m}, sample_rate: 0}", "'sample_rate' must be a share above 0, at most 1"),
        ("{name: a, candidate: {model: m}, sample_rate: 1.5}", "'sample_rate' must be a share above 0, at most 1"),
        ("{name: a, candidate: {model: m}, max_requests_per_day: 2.5}", "must be a whole number of requests"),
        ("{name: a, candidate: {model: m}, max_usd_per_day: -1}", "'max_usd_per_day' must be US dollars"),
        ("{name: a, candidate: {model: m}, match: {colour: red}}", "experiment 'a': match: unknown condition 'colour'"),
        ("{name: a, candidate: {model: m}, match: {provider: acme-ai}}", "match.provider 'acme-ai' is unknown"),
        ("{name: a, candidate: {model: m}, samples: 3}", "unknown field 'samples'"),
        ("{name: a, candidate: {model: m}, enabled: maybe}", "'enabled' must be true or false"),
    ],
)
def test_a_broken_experiment_is_refused_naming_it_and_the_fix(item, message):
    with pytest.raises(ExperimentError, match=message) as refused:
        parse_experiments(f"experiments: [{item}]", "experiments.yaml")
    assert str(refused.value).startswith("experiments.yaml: experiment")


def test_two_experiments_with_one_id_are_refused_and_an_empty_file_has_none():
    with pytest.raises(ExperimentError, match="id 'x' is already used by 'x'"):
        parse_experiments("experiments: [{name: x, candidate: {model: m}}, {name: X, candidate: {model: n}}]")
    assert parse_experiments("").experiments == () and parse_experiments("experiments: []").running == ()
    with pytest.raises(ExperimentError, match="expected a mapping with one key, 'experiments:'"):
        parse_experiments("rules: []", "experiments.yaml")


def test_the_file_sits_beside_the_rules_unless_one_is_named():
    assert experiments_path("/etc/lectr/rules.yaml") == "/etc/lectr/experiments.yaml"
    assert experiments_path("rules.yaml") == "experiments.yaml"
    assert experiments_path("/etc/lectr/rules.yaml", "/srv/exp.yaml") == "/srv/exp.yaml"


def order(doc_index: int, endpoint: str = "/chat/completions", provider: str = "openai", secrets: str = "", **kw):
    experiment = parse_experiments(DOC).experiments[doc_index]
    credentials = parse_credentials(secrets, env={})
    return shadow_order(
        experiment,
        org=kw.get("org", "acme"),
        endpoint=endpoint,
        provider=provider,
        credentials=credentials,
        base_urls=BASE_URLS,
        client_fields=kw.get("fields", ((b"authorization", b"Bearer sk-client"), (b"anthropic-beta", b"x"))),
        secrets_file="secrets.yaml",
    )


def test_an_order_carries_lectrs_own_key_for_the_candidate_never_the_clients():
    made = order(0, secrets="providers: {openai: {api_key: sk-lectr-own}}")
    assert made.blocked is None and made.url == "http://sim/v1/chat/completions"
    assert dict(made.headers) == {"content-type": "application/json", "authorization": "Bearer sk-lectr-own"}
    assert (made.provider, made.model, made.max_requests_per_day, made.max_usd_per_day) == (
        "openai",
        "gpt-4o-mini",
        50,
        0.5,
    )
    assert "sk-lectr-own" not in repr(made)  # a log line that shows an order does not show the key


def test_an_order_without_a_key_of_lectrs_says_how_to_add_one():
    made = order(2, org="globex")
    assert made.url == "" and made.headers == ()
    assert "no groq key of its own for org 'globex'" in made.blocked
    assert "providers.groq.api_key to secrets.yaml" in made.blocked and "LECTR_GROQ_API_KEY" in made.blocked


def test_native_anthropic_traffic_is_shadowed_within_anthropic_with_the_clients_api_headers():
    secrets = "providers: {anthropic: {api_key: sk-ant-lectr}, groq: {api_key: gsk-lectr}}"
    experiment_doc = "experiments: [{name: a, candidate: {model: claude-haiku-4-5}}]"
    experiment = parse_experiments(experiment_doc).experiments[0]
    made = shadow_order(
        experiment,
        org="acme",
        endpoint="/messages",
        provider="anthropic",
        credentials=parse_credentials(secrets, env={}),
        base_urls=BASE_URLS,
        client_fields=(
            (b"x-api-key", b"sk-ant-client"),
            (b"anthropic-version", b"2023-06-01"),
            (b"anthropic-beta", b"b1"),
        ),
        secrets_file="secrets.yaml",
    )
    assert made.url == "http://sim/v1/messages"
    assert dict(made.headers) == {
        "content-type": "application/json",
        "anthropic-version": "2023-06-01",
        "anthropic-beta": "b1",
        "x-api-key": "sk-ant-lectr",
    }
    to_groq = order(2, endpoint="/messages", provider="anthropic", secrets=secrets, org="globex")
    assert "can only be shadowed within Anthropic" in to_groq.blocked
