"""Shadow experiments' pure parts: the Wilson interval and the confidence it earns
(lectr/shadow/evidence.py), the recommendation engine reading it (lectr/jobs/recommend.py), the
daily caps (lectr/shadow/caps.py) and the candidate's request body (lectr/shadow/calls.py)."""

from __future__ import annotations

import gzip
import json
import threading
import time
from datetime import datetime, timezone

import pytest

from lectr.common.events import ShadowOrder
from lectr.jobs.recommend import recommend
from lectr.shadow import calls, evidence
from lectr.shadow.caps import DailyCaps

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


def order(**kw) -> ShadowOrder:
    return ShadowOrder("e", "openai", "gpt-4o-mini", "http://x", (), kw.get("count", 1000), kw.get("usd", 1.0))


NOW = datetime(2026, 12, 4, 12, tzinfo=timezone.utc)


def test_the_count_cap_starts_from_the_stored_days_usage_and_a_new_day_starts_over():
    seeded = []
    caps = DailyCaps(lambda day: seeded.append(day) or {"e": (9, 0.0)})
    assert caps.reserve(order(count=10), NOW) == (None, 0.0)
    caps.settle(order(), 0.0, 0.001, sent=True)
    assert caps.reserve(order(count=10), NOW)[0] == "max_requests_per_day reached: 10 sent today (UTC)"
    tomorrow = datetime(2026, 12, 5, 0, 1, tzinfo=timezone.utc)
    assert caps.reserve(order(count=10), tomorrow)[0] is None
    assert seeded == [datetime(2026, 12, 4), datetime(2026, 12, 5)]  # naive UTC, as stored


def test_the_spend_cap_counts_the_dearest_answer_for_each_one_in_flight():
    caps = DailyCaps(lambda day: {})
    assert caps.reserve(order(usd=0.01), NOW) == (None, 0.0)
    caps.settle(order(), 0.0, 0.004, sent=True)  # spent 0.004; dearest 0.004
    first = caps.reserve(order(usd=0.01), NOW)  # 0.004 + 0.004 <= 0.01
    assert first == (None, 0.004)
    assert caps.reserve(order(usd=0.01), NOW)[0].startswith("max_usd_per_day reached: $0.0040 spent")  # + 2 x 0.004
    caps.settle(order(), first[1], None, sent=False)  # not sent after all: its place is free again
    assert caps.reserve(order(usd=0.01), NOW)[0] is None


def test_until_the_days_first_answer_is_back_the_others_wait_for_it():
    caps = DailyCaps(lambda day: {})
    assert caps.reserve(order(usd=0.001), NOW)[0] is None
    got = []
    waiter = threading.Thread(target=lambda: got.append(caps.reserve(order(usd=0.001), NOW, wait=5)))
    waiter.start()
    time.sleep(0.2)
    assert got == []  # waiting: the first one's cost is not known yet
    caps.settle(order(), 0.0, 0.0008, sent=True)
    waiter.join(5)
    assert got and got[0][0].startswith("max_usd_per_day reached")  # 0.0008 + 0.0008 > 0.001


def test_the_candidate_gets_the_clients_body_with_its_model_and_no_stream():
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": True, "temperature": 0.2,
            "stream_options": {"include_usage": True}, "response_format": {"type": "json_object"}}  # fmt: skip
    sent = json.loads(calls.candidate_body(gzip.compress(json.dumps(body).encode()), "gzip", "/chat/completions", "m"))
    assert sent == {
        "model": "m",
        "messages": body["messages"],
        "temperature": 0.2,
        "response_format": body["response_format"],
    }
    responses = json.loads(
        calls.candidate_body(b'{"model": "gpt-4o", "input": "hi", "stream": true}', "", "/responses", "m")
    )
    assert responses == {"model": "m", "input": "hi", "store": False}
    with pytest.raises(calls.Unsupported, match="previous_response_id"):
        calls.candidate_body(b'{"model": "x", "previous_response_id": "resp_1"}', "", "/responses", "m")
    with pytest.raises(calls.Unsupported, match="not a JSON object"):
        calls.candidate_body(b"[1, 2]", "", "/chat/completions", "m")


def test_a_failures_record_keeps_its_code_never_its_message():
    body = b'{"error": {"message": "Your prompt \\"secret plans\\" is too long", "code": "context_length_exceeded"}}'
    assert calls.error_code(body) == "context_length_exceeded"
    assert (
        calls.error_code(b'{"type": "error", "error": {"type": "overloaded_error", "message": "x"}}')
        == "overloaded_error"
    )
    assert calls.error_code(b"<html>") == ""
