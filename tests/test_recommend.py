"""Recommendations: cheaper same-family models per feature, with confidence driven by the task type."""

import json

import pytest
import yaml

from lectr.recommend import family_position, judge, recommend, recommend_all
from lectr.rules import parse_rules

# $ per million tokens (input, output), to check the savings independently of genai-prices.
PRICES = {"gpt-4o": (2.5, 10.0), "gpt-4o-mini": (0.15, 0.6)}


def _profile(**overrides) -> dict:
    profile = {
        "org_id": "acme", "feature": "support-bot", "provider": "openai", "model_actual": "gpt-4o",
        "requests": 400, "errors": 3, "avg_prompt_tokens": 500.0, "p95_prompt_tokens": 900.0,
        "avg_completion_tokens": 100.0, "p95_completion_tokens": 150.0, "avg_cached_tokens": 0.0,
        "cost_usd": 12.0, "days_observed": 4.0, "task_mix": {"summarisation": 400},
    }  # fmt: skip
    profile.update(overrides)
    return profile


def test_family_position():
    family, index = family_position("openai", "gpt-4o")
    assert (family, index) == (["gpt-4o", "gpt-4o-mini"], 0)
    assert family_position("openai", "gpt-4o-2024-08-06") == (["gpt-4o", "gpt-4o-mini"], 0)
    assert family_position("openai", "gpt-4o-mini") == (["gpt-4o", "gpt-4o-mini"], 1)
    assert family_position("openai", "gpt-4o-mini-2024-07-18") == (["gpt-4o", "gpt-4o-mini"], 1)
    assert family_position("openai", "gpt-5-mini") == (["gpt-5", "gpt-5-mini", "gpt-5-nano"], 1)
    assert family_position("openai", "gpt-4o-realtime") is None
    assert family_position("openai", "claude-sonnet-4-5") is None
    assert family_position("nobody", "gpt-4o") is None


def test_classification_goes_to_the_smallest_with_high_confidence():
    rec = recommend(_profile(model_actual="gpt-5", task_mix={"classification": 400}))
    assert (rec.suggested_model, rec.confidence) == ("gpt-5-nano", "high")
    assert judge(_profile(task_mix={"classification": 400}))[0] == "high"


def test_classification_with_few_requests_is_medium():
    rec = recommend(_profile(model_actual="gpt-5", requests=99, task_mix={"classification": 99}))
    assert (rec.suggested_model, rec.confidence) == ("gpt-5-nano", "medium")


@pytest.mark.parametrize("mix", [{"reasoning": 400}, {"classification": 399, "reasoning": 1}])
def test_reasoning_is_never_downgraded(mix):
    huge = _profile(model_actual="gpt-5", requests=100_000, cost_usd=1_000_000.0, task_mix=mix)
    assert judge(huge) is None
    assert recommend(huge) is None


@pytest.mark.parametrize("avg_prompt, confidence", [(500.0, "high"), (8000.0, "medium"), (20_000.0, "low")])
def test_summarisation_confidence_falls_with_prompt_length(avg_prompt, confidence):
    rec = recommend(_profile(avg_prompt_tokens=avg_prompt, task_mix={"summarisation": 400}))
    assert (rec.suggested_model, rec.confidence) == ("gpt-4o-mini", confidence)


def test_summarisation_is_one_step_down():
    assert recommend(_profile(model_actual="gpt-5")).suggested_model == "gpt-5-mini"


def test_extraction():
    assert recommend(_profile(task_mix={"extraction": 400})).confidence == "medium"
    assert recommend(_profile(avg_completion_tokens=1200.0, task_mix={"extraction": 400})).confidence == "low"
    assert recommend(_profile(p95_completion_tokens=3000.0, task_mix={"extraction": 400})).confidence == "low"


def test_generation():
    assert recommend(_profile(task_mix={"generation": 400})).confidence == "medium"
    assert recommend(_profile(avg_completion_tokens=900.0, task_mix={"generation": 400})).confidence == "low"


@pytest.mark.parametrize("mix", [None, {}])
def test_no_task_header_is_at_most_medium(mix):
    assert recommend(_profile(task_mix=mix, requests=10_000)).confidence == "medium"
    assert recommend(_profile(task_mix=mix, avg_prompt_tokens=5000.0)).confidence == "low"


def test_mixed_tasks_are_low():
    assert recommend(_profile(task_mix={"classification": 200, "extraction": 200})).confidence == "low"


@pytest.mark.parametrize("model", ["gpt-4o-mini", "gpt-5-nano", "gpt-4o-mini-2024-07-18"])
def test_already_the_smallest_model(model):
    assert recommend(_profile(model_actual=model, task_mix={"classification": 400})) is None


def test_too_few_requests():
    assert recommend(_profile(requests=19)) is None
    assert recommend(_profile(requests=20)) is not None


def test_unknown_family_is_none():
    assert recommend(_profile(model_actual="my-fine-tune")) is None


def test_monthly_saving():
    rec = recommend(_profile())  # gpt-4o -> gpt-4o-mini, 400 requests over 4 days costing $12
    current = 12.0 / 400 * (400 / 4 * 30)
    assert rec.current_monthly_usd == pytest.approx(current, abs=1e-4)
    (now_in, now_out), (then_in, then_out) = PRICES["gpt-4o"], PRICES["gpt-4o-mini"]
    ratio = (500 * then_in + 100 * then_out) / (500 * now_in + 100 * now_out)
    assert rec.suggested_monthly_usd == pytest.approx(current * ratio, abs=1e-4)
    assert rec.monthly_saving_usd == pytest.approx(current * (1 - ratio), abs=1e-4)
    assert rec.monthly_saving_usd > 0


def test_short_observation_counts_as_one_day():
    rec = recommend(_profile(days_observed=0.25))
    assert rec.current_monthly_usd == pytest.approx(12.0 / 400 * (400 / 1 * 30), abs=1e-4)


def test_evidence_is_json():
    evidence = json.loads(recommend(_profile(task_mix={"summarisation": 390, "generation": 10})).evidence)
    assert evidence["requests"] == 400
    assert evidence["task_mix"] == {"summarisation": 390, "generation": 10}
    assert evidence["cost_usd"] == 12.0


def test_rule_yaml_parses_and_routes_the_feature():
    rec = recommend(_profile(feature="Support-Bot"))
    rules = parse_rules(yaml.safe_dump({"rules": yaml.safe_load(rec.rule_yaml)}))
    [rule] = rules.rules
    assert (rule.org, rule.feature, rule.provider, rule.model) == ("acme", "support-bot", "openai", "gpt-4o")
    assert rule.target_model == rec.suggested_model == "gpt-4o-mini"
    assert rules.first_match("acme", "Support-Bot", None, "openai", "gpt-4o") is rule
    assert rules.first_match("acme", "billing", None, "openai", "gpt-4o") is None
    assert rules.first_match("other-org", "support-bot", None, "openai", "gpt-4o") is None


def test_untagged_traffic_gets_no_recommendation_because_no_rule_could_route_it_alone():
    # A rule without a feature condition would also catch tagged features (reasoning among them).
    assert recommend(_profile(feature=None, task_mix=None)) is None
    assert recommend(_profile(feature="tagged", task_mix=None)) is not None


def test_recommend_all_sorts_high_confidence_first_then_saving():
    profiles = [
        _profile(feature="low-big", avg_prompt_tokens=20_000.0, cost_usd=5000.0),  # low, large saving
        _profile(feature="high-small", cost_usd=1.0),  # high, small saving
        _profile(feature="medium", task_mix=None, cost_usd=50.0),
        _profile(feature="high-big", cost_usd=100.0),
        _profile(feature="none", task_mix={"reasoning": 1}),
    ]
    found = [(r.feature, r.confidence) for r in recommend_all(profiles)]
    assert found == [("high-big", "high"), ("high-small", "high"), ("medium", "medium"), ("low-big", "low")]
    recs = recommend_all(profiles)
    assert recs[0].monthly_saving_usd > recs[1].monthly_saving_usd
