"""Anomaly detection: the current hour against a week of hourly baselines, by median and MAD."""

import random

import pytest

from lectr.jobs.anomaly import MAD_TO_SIGMA, Settings, anomaly_key, detect, robust_score


def test_robust_score_uses_median_and_mad():
    median, score = robust_score(6.0, [1.0, 2.0, 3.0, 4.0, 5.0], "cost_usd")
    assert median == 3.0
    assert score == pytest.approx((6.0 - 3.0) / (MAD_TO_SIGMA * 1.0))  # MAD of 1..5 around 3 is 1


def test_robust_score_is_not_hidden_by_an_earlier_spike():
    _, with_spike = robust_score(6.0, [1.0, 2.0, 3.0, 4.0, 5.0, 500.0], "cost_usd")
    assert with_spike > 1.0  # a mean/stdev score would be near zero here


def test_robust_score_floors_the_spread():
    assert robust_score(3.0, [2.0, 2.0, 2.0], "cost_usd") == (2.0, pytest.approx(1.0 / (0.10 * 2.0)))  # 10% of median
    assert robust_score(10.0, [0.0, 0.0, 0.0], "requests") == (0.0, pytest.approx(10.0 / 5.0))  # absolute floor


def _hours(current: dict, history_hours: int = 168, feature: str | None = None, seed: int = 1) -> list[dict]:
    """A steady baseline with ~2% noise, and `current` at hours_ago=0."""
    rng = random.Random(seed)
    rows = []
    for h in range(1, history_hours + 1):
        n = lambda v: v * (1 + rng.uniform(-0.02, 0.02))  # noqa: E731
        rows.append(
            {
                "requests": round(n(100)),
                "error_rate": n(0.01),
                "cost_usd": n(1.0),
                "tokens": round(n(50_000)),
                "latency_p95_ms": n(800.0),
                "hours_ago": h,
            }
        )
    normal = {"requests": 100, "error_rate": 0.01, "cost_usd": 1.0, "tokens": 50_000, "latency_p95_ms": 800.0}
    rows.append({**normal, **current, "hours_ago": 0})
    for row in rows:
        row.update(org_id="acme", feature=feature, whole_org=feature is None)
    return rows


def test_cost_spike_is_critical():
    findings = detect(_hours({"cost_usd": 10.0}))
    assert [(f.org_id, f.feature, f.metric, f.severity) for f in findings] == [("acme", None, "cost_usd", "critical")]
    assert findings[0].observed == 10.0
    assert findings[0].expected == pytest.approx(1.0, rel=0.03)
    assert findings[0].key == anomaly_key("acme", None, "cost_usd") == "acme||cost_usd"


def test_moderate_increase_is_a_warning():
    findings = detect(_hours({"cost_usd": 1.6}))  # spread is floored at 10% of the median: score about 6
    assert [(f.metric, f.severity) for f in findings] == [("cost_usd", "warning")]


def test_normal_hour_gives_nothing():
    assert detect(_hours({})) == []


def test_drops_do_not_alert():
    assert detect(_hours({"cost_usd": 0.01, "latency_p95_ms": 10.0})) == []


def test_quiet_hour_below_min_requests_gives_nothing():
    assert detect(_hours({"cost_usd": 10.0, "requests": 19})) == []
    assert detect(_hours({"cost_usd": 10.0, "requests": 19}), Settings(min_requests=10)) != []


def test_short_history_gives_nothing():
    assert detect(_hours({"cost_usd": 10.0}, history_hours=23)) == []
    assert [f.metric for f in detect(_hours({"cost_usd": 10.0}, history_hours=24))] == ["cost_usd"]


def test_per_feature_rows_give_findings_for_that_feature():
    rows = _hours({"error_rate": 0.5}, feature="support-bot")
    findings = detect(rows)
    assert [(f.feature, f.metric, f.severity) for f in findings] == [("support-bot", "error_rate", "critical")]
    assert findings[0].key == "acme|support-bot|error_rate"


def test_orgs_and_features_are_separate_series():
    rows = (
        _hours({"cost_usd": 10.0}, feature="support-bot") + _hours({}) + [{**r, "org_id": "other"} for r in _hours({})]
    )
    assert [(f.org_id, f.feature, f.metric) for f in detect(rows)] == [("acme", "support-bot", "cost_usd")]


def test_flat_baseline_does_not_alert_on_a_tiny_change():
    rows = [
        {"org_id": "acme", "feature": None, "whole_org": True, "hours_ago": h, "requests": 100, "error_rate": 0.0,
         "cost_usd": 1.0, "tokens": 50_000, "latency_p95_ms": 800.0}
        for h in range(0, 169)
    ]  # fmt: skip
    rows[0].update(requests=104, cost_usd=1.05, tokens=50_400, latency_p95_ms=830.0, error_rate=0.01)
    assert detect(rows) == []
