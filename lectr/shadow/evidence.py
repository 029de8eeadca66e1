"""What an experiment's pairs say: agreement with its 95% interval, and the confidence it earns.

Pure. The recommendation engine (lectr.jobs.recommend) turns an experiment's results
(`Store.experiment_results`) into a recommendation's confidence with `verdict`; the dashboard
shows the same figures (`summary`) while the experiment runs.

Agreement is the share of compared pairs whose answers agreed (lectr.shadow.compare), with a
Wilson score interval: unlike the normal approximation it stays inside [0, 1] and is honest
at the extremes, where a good candidate lives (97 of 100). The thresholds are named below.
"""

from __future__ import annotations

import math

Z95 = 1.959963984540054  # the normal quantile of a two-sided 95% interval

MIN_PAIRS = 30  # fewer: the evidence is still coming in, and the heuristic's confidence stands
HIGH_LOWER, HIGH_PAIRS = 0.90, 100  # high: the interval's lower bound at least 0.90, over 100 pairs or more
MEDIUM_LOWER = 0.80  # medium: the lower bound at least 0.80
WITHDRAW_UPPER = 0.80  # withdrawn: even the upper bound is below 0.80, the candidate is measurably worse
MAX_ERROR_SHARE = 0.05  # more of the candidate's requests failing than this: at most low
UNTAGGED_SHARE = 0.5  # pairs mostly without a task header (compared as generation): at most medium


def wilson(agreed: int, pairs: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of agreed/pairs; (0, 1) when there are no pairs."""
    if pairs <= 0:
        return 0.0, 1.0
    p = agreed / pairs
    centre = p + z * z / (2 * pairs)
    margin = z * math.sqrt(p * (1 - p) / pairs + z * z / (4 * pairs * pairs))
    denominator = 1 + z * z / pairs
    return max(0.0, (centre - margin) / denominator), min(1.0, (centre + margin) / denominator)


def verdict(result: dict) -> tuple[str | None, str]:
    """(confidence: high, medium, low or withdrawn; None while collecting, and why) for one
    experiment's results. Reasoning traffic is the recommendation engine's to refuse, before this."""
    pairs, agreed = int(result.get("pairs") or 0), int(result.get("agreed") or 0)
    low, high = wilson(agreed, pairs)
    measured = (
        f"{agreed} of {pairs} answers agreed ({_pct(agreed / pairs if pairs else 0)}, 95% CI {_pct(low)}–{_pct(high)})"
    )
    if pairs < MIN_PAIRS:
        return None, f"shadow test collecting: {pairs} of {MIN_PAIRS} pairs needed"
    if high < WITHDRAW_UPPER:
        return "withdrawn", f"shadow test: {measured}; below {_pct(WITHDRAW_UPPER)} even at best"
    if low >= HIGH_LOWER and pairs >= HIGH_PAIRS:
        level = "high"
    elif low >= MEDIUM_LOWER:
        level = "medium"
    else:
        level = "low"
    notes = []
    errors = int(result.get("errors") or 0)
    if errors > MAX_ERROR_SHARE * (pairs + errors):
        level = "low"
        notes.append(f"the candidate failed {errors} of {pairs + errors} requests")
    if int(result.get("untagged_pairs") or 0) > UNTAGGED_SHARE * pairs and level == "high":
        level = "medium"
        notes.append("most requests had no X-Lectr-Task, so answers were compared as free text")
    return level, f"shadow test: {measured}" + "".join(f"; {n}" for n in notes)


def summary(result: dict) -> dict:
    """The figures a recommendation's evidence JSON carries, and the dashboard shows."""
    pairs, agreed = int(result.get("pairs") or 0), int(result.get("agreed") or 0)
    low, high = wilson(agreed, pairs)
    return {
        "experiment_id": result.get("experiment_id"),
        "candidate": f"{result.get('provider')}/{result.get('model')}",
        "pairs": pairs,
        "agreed": agreed,
        "agreement": round(agreed / pairs, 4) if pairs else None,
        "agreement_95ci": [round(low, 4), round(high, 4)],
        "comparisons": dict(result.get("comparisons") or {}),
        "untagged_pairs": int(result.get("untagged_pairs") or 0),
        "candidate_errors": int(result.get("errors") or 0),
        "cost_per_request_usd": {
            "current": _round(result.get("live_cost_per_request"), 8),
            "candidate": _round(result.get("candidate_cost_per_request"), 8),
        },
        "latency_p50_ms": {
            "current": _round(result.get("live_p50_ms"), 1),
            "candidate": _round(result.get("candidate_p50_ms"), 1),
        },
        "shadow_spend_usd": _round(result.get("spend_usd"), 6),
    }


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _round(value: object, digits: int) -> float | None:
    return None if value is None or value != value else round(float(value), digits)  # NaN: none
