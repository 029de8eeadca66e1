"""Shadow experiments' evidence: the Wilson interval and the confidence it earns
(lectr/shadow/evidence.py), and the recommendation engine reading it (lectr/jobs/recommend.py)."""

from __future__ import annotations

import json

import pytest

from lectr.jobs.recommend import recommend
from lectr.shadow import evidence

from helpers import traffic_profile as _profile


@pytest.mark.parametrize(
    "agreed, pairs, low, high",
    [  # statsmodels.stats.proportion.proportion_confint(agreed, pairs, method="wilson")
        (97, 100, 0.915480, 0.989746),
        (70, 100, 0.604151, 0.781051),
        (0, 10, 0.0, 0.277533),
        (10, 10, 0.722467, 1.0),
    ],
)
def test_the_wilson_interval_matches_the_reference(agreed, pairs, low, high):
    assert evidence.wilson(agreed, pairs) == pytest.approx((low, high), abs=1e-6)


def result(pairs: int, agreed: int, **more) -> dict:
    return {
        "experiment_id": "e", "org_id": "acme", "feature": "support-bot", "live_provider": "openai",
        "live_model": "gpt-4o", "provider": "openai", "model": "gpt-4o-mini", "pairs": pairs, "agreed": agreed,
        "errors": 0, "untagged_pairs": 0, "live_cost_per_request": 0.003, "candidate_cost_per_request": 0.0002,
        "live_p50_ms": 800.0, "candidate_p50_ms": 400.0, "spend_usd": 0.02, "comparisons": {"label": pairs},
        **more,
    }  # fmt: skip


@pytest.mark.parametrize(
    "pairs, agreed, confidence",
    [
        (29, 29, None),  # collecting: under MIN_PAIRS
        (150, 145, "high"),  # lower bound 0.924 over 150
        (99, 99, "medium"),  # lower bound 0.963, but under HIGH_PAIRS
        (100, 88, "medium"),  # lower bound 0.802
        (100, 80, "low"),  # 0.711 to 0.867: neither
        (150, 105, "withdrawn"),  # even the upper bound, 0.768, is under 0.80
    ],
)
def test_the_interval_decides_the_confidence_at_the_named_thresholds(pairs, agreed, confidence):
    assert evidence.verdict(result(pairs, agreed))[0] == confidence


def test_failing_candidates_and_untagged_pairs_lower_the_confidence_and_say_why():
    level, reason = evidence.verdict(result(150, 148, errors=20))
    assert level == "low" and "the candidate failed 20 of 170 requests" in reason
    level, reason = evidence.verdict(result(150, 148, untagged_pairs=100))
    assert level == "medium" and "compared as free text" in reason


def test_measured_evidence_decides_the_recommendation_with_the_measured_costs():
    profile = _profile(task_mix={"classification": 400})
    rec = recommend(profile, results=[result(150, 146)])
    assert (rec.suggested_model, rec.confidence) == ("gpt-4o-mini", "high")
    assert rec.reason.startswith("shadow test: 146 of 150 answers agreed (97.3%, 95% CI")
    test = json.loads(rec.evidence)["shadow_test"]
    assert test["pairs"] == 150 and test["cost_per_request_usd"] == {"current": 0.003, "candidate": 0.0002}
    assert rec.suggested_monthly_usd == pytest.approx(rec.current_monthly_usd * 0.0002 / 0.003, rel=1e-3)
    withdrawn = recommend(_profile(task_mix={"extraction": 400}), results=[result(150, 105)])
    assert withdrawn.confidence == "withdrawn" and "below 80.0% even at best" in withdrawn.reason


def test_reasoning_is_never_recommended_whatever_the_agreement_and_collecting_keeps_the_heuristic():
    assert recommend(_profile(task_mix={"reasoning": 400}), results=[result(500, 500)]) is None
    heuristic = recommend(_profile(task_mix={"classification": 400}), results=[result(10, 10)])
    assert heuristic.confidence == "high" and heuristic.reason.startswith("classification")
    assert "collecting: 10 of 30" in json.loads(heuristic.evidence)["shadow_test"]["status"]
    other_feature = recommend(_profile(task_mix={"classification": 400}), results=[result(150, 10, feature="x")])
    assert other_feature.confidence == "high"  # another feature's experiment is no evidence here


def test_a_switch_of_provider_measured_by_an_experiment_becomes_a_rule_that_switches():
    rec = recommend(
        _profile(task_mix={"classification": 400}),
        results=[result(150, 150, provider="groq", model="llama-3.1-8b-instant")],
    )
    assert rec.suggested_model == "llama-3.1-8b-instant" and "provider: groq" in rec.rule_yaml
