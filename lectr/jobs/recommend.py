"""Recommendations: which feature could run on a cheaper model, and how sure Lectr is.

Pure. Input: per org, feature and model, the observed traffic (`Store.traffic_profiles`).
Candidates are the smaller models of the same family at the same provider (so no new key
is needed), found in the price data (`families`), priced by genai-prices on the feature's
own token profile, and proposed only when cheaper on it.

The task type (X-Lectr-Task) is the strongest signal and overrides the heuristics:
- classification: a strong downgrade candidate, straight to the family's smallest model;
- summarisation: one step down; less sure as prompts get long;
- extraction: one step down; less sure when outputs are long (complex nested extraction);
- generation: neutral, decided by the length heuristics;
- reasoning: never recommended for downgrade, whatever else the numbers say.
Without a task header, length heuristics alone give at most medium confidence.
Untagged traffic (no X-Lectr-Feature) gets no recommendation: no rule could route it alone.

Measured evidence beats all of that. When a shadow experiment (lectr.common.experiments) has
compared enough of this traffic's answers with a candidate's (lectr.shadow.evidence.MIN_PAIRS),
the candidate is the suggestion, its agreement interval decides the confidence (high, medium,
low, or withdrawn: measurably worse), and the costs are the measured ones. Reasoning stays
out whatever the agreement: `judge` refuses it before any evidence is read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import yaml

from lectr.common.usage import Usage
from lectr.prices import families, pricing
from lectr.prices.families import Catalog, Model
from lectr.shadow import evidence as shadow

MIN_REQUESTS = 20  # less traffic than this is no evidence
HIGH_CONFIDENCE_REQUESTS = 100
DOMINANT_SHARE = 0.8  # a task is the feature's task when it is this share of tagged requests
DAYS_PER_MONTH = 30
RANK = {"withdrawn": -1, "low": 0, "medium": 1, "high": 2}


@dataclass(frozen=True)
class Recommendation:
    org_id: str
    feature: str | None
    provider: str
    current_model: str
    suggested_model: str
    confidence: str  # high, medium, low; withdrawn: a shadow test measured the candidate worse
    reason: str
    requests: int
    current_monthly_usd: float
    suggested_monthly_usd: float
    monthly_saving_usd: float
    evidence: str  # JSON
    rule_yaml: str

    def row(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def judge(profile: dict) -> tuple[str, str, bool] | None:
    """(confidence, reason, go to the family's smallest) for a traffic profile, or None: do not downgrade."""
    mix: dict = profile.get("task_mix") or {}
    tagged = sum(mix.values())
    if mix.get("reasoning"):
        return None  # reasoning is never downgraded, even as a share of a feature's traffic
    avg_prompt = profile["avg_prompt_tokens"] or 0
    avg_out = profile["avg_completion_tokens"] or 0
    p95_out = profile.get("p95_completion_tokens") or avg_out
    short = avg_prompt <= 1000 and avg_out <= 200
    task = next((t for t, n in mix.items() if tagged and n / tagged >= DOMINANT_SHARE), None)
    if task == "classification":
        return "high", "classification: small models label as well as large ones", True
    if task == "summarisation":
        if avg_prompt <= 4000:
            return "high", "summarisation of short inputs", False
        if avg_prompt <= 16000:
            return "medium", "summarisation of long inputs: check quality on a sample first", False
        return "low", "summarisation of very long inputs: the smaller model may miss content", False
    if task == "extraction":
        if avg_out > 800 or p95_out > 2000:
            return "low", "extraction with long outputs (complex or nested): verify structure first", False
        return "medium", "extraction of short structured outputs", False
    if task == "generation":
        if short:
            return "medium", "generation of short texts", False
        return "low", "generation of long texts: quality differences show most here", False
    if tagged:
        return "low", "mixed task types: no single task dominates", False
    if short:
        return "medium", "no task header; short prompts and answers", False
    return "low", "no task header; long prompts or answers", False


def cheaper_sibling(
    catalog: Catalog, provider: str, here: Model, typical: Usage, now_each: float, smallest: bool
) -> tuple[str, float] | None:
    """(model, price per call) of the family's next smaller tier, or its smallest, among the
    siblings cheaper on this profile; None when no smaller sibling is cheaper."""
    priced = [(m, pricing.cost_usd(provider, m.name, typical)) for m in catalog.smaller(provider, here)]
    # Ties go to a non-reasoning variant (the traffic is not reasoning, and thinking tokens
    # would cost output the profile does not show), then to the cheaper model.
    cheaper = sorted(
        ((m, c) for m, c in priced if c is not None and c < now_each),
        key=lambda mc: (mc[0].reasoning, mc[1], mc[0].name),
    )
    if not cheaper:
        return None
    rank = max(m.rank for m, _ in cheaper) if smallest else min(m.rank for m, _ in cheaper)
    tier = [(m, c) for m, c in cheaper if m.rank == rank]
    # Within the tier, the sibling nearest in time: the same release (gpt-5 -> gpt-5-mini),
    # else the latest before it (gpt-5.5 -> gpt-5.4-mini), else the first after it.
    before = [(m, c) for m, c in tier if m.release <= here.release]
    m, c = max(before, key=lambda mc: mc[0].release) if before else min(tier, key=lambda mc: mc[0].release)
    return m.name, c


def recommend(profile: dict, catalog: Catalog | None = None, results: list[dict] = ()) -> Recommendation | None:
    """`results`: the shadow experiments' (Store.experiment_results); those on this traffic are evidence."""
    provider, model = profile["provider"], profile["model_actual"]
    requests = profile["requests"]
    if requests < MIN_REQUESTS or not provider or not model:
        return None
    if not profile["feature"]:
        # A rule cannot single out untagged traffic: it would catch tagged features
        # (reasoning among them) on the same model too. Tag it with X-Lectr-Feature first.
        return None
    verdict = judge(profile)
    if verdict is None:
        return None
    tested = tested_on(profile, results)
    measured = None if tested is None else shadow.verdict(tested)
    if measured is not None and measured[0] is not None:
        return _from_shadow_test(profile, tested, *measured)
    catalog = catalog or families.catalog()
    here = catalog.find(provider, model)
    if here is None:
        return None  # a model the price data cannot place in a family
    confidence, reason, smallest = verdict
    if confidence == "high" and requests < HIGH_CONFIDENCE_REQUESTS:
        confidence = "medium"

    typical = Usage(
        round(profile["avg_prompt_tokens"] or 0),
        round(profile["avg_completion_tokens"] or 0),
        round(profile.get("avg_cached_tokens") or 0) or None,
    )
    now_each = pricing.cost_usd(provider, model, typical)
    choice = None if now_each is None else cheaper_sibling(catalog, provider, here, typical, now_each, smallest)
    if choice is None:
        return None
    suggested, then_each = choice
    current = profile["cost_usd"] or now_each * requests
    current_monthly = current / requests * requests_per_month(profile)
    suggested_monthly = current_monthly * then_each / now_each
    evidence = _evidence(profile, current)
    if tested is not None:  # an experiment still collecting: its figures so far
        evidence["shadow_test"] = shadow.summary(tested) | {"status": measured[1]}
    return _recommendation(profile, suggested, None, confidence, reason, current_monthly, suggested_monthly, evidence)


def tested_on(profile: dict, results: list[dict]) -> dict | None:
    """The experiment with the most pairs on this traffic (org, feature, provider, model), if any."""
    mine = [
        r
        for r in results
        if (r.get("org_id"), r.get("feature"), r.get("live_provider"), r.get("live_model"))
        == (profile["org_id"], profile["feature"], profile["provider"], profile["model_actual"])
    ]
    return max(mine, key=lambda r: (r.get("pairs") or 0, r.get("last_at") or 0), default=None)


def _from_shadow_test(profile: dict, result: dict, confidence: str, reason: str) -> Recommendation | None:
    """The candidate an experiment measured, at the confidence its agreement earns, with the measured costs."""
    if no_saving(result, confidence) is not None:
        return None
    requests = profile["requests"]
    now_each, then_each = result.get("live_cost_per_request"), result.get("candidate_cost_per_request")
    current = profile["cost_usd"] or (now_each or 0.0) * requests
    current_monthly = current / requests * requests_per_month(profile)
    measured = bool(now_each) and then_each is not None and then_each == then_each  # NaN: none measured
    # A withdrawn candidate is shown even without measured costs: then with no saving stated.
    suggested_monthly = current_monthly * then_each / now_each if measured else current_monthly
    evidence = _evidence(profile, current) | {"shadow_test": shadow.summary(result)}
    target_provider = result.get("provider") if result.get("provider") != profile["provider"] else None
    return _recommendation(
        profile, result["model"], target_provider, confidence, reason, current_monthly, suggested_monthly, evidence
    )


def _recommendation(
    profile: dict,
    suggested: str,
    target_provider: str | None,
    confidence: str,
    reason: str,
    current_monthly: float,
    suggested_monthly: float,
    evidence: dict,
) -> Recommendation:
    org, feature, provider, model = profile["org_id"], profile["feature"], profile["provider"], profile["model_actual"]
    return Recommendation(
        org_id=org,
        feature=feature,
        provider=provider,
        current_model=model,
        suggested_model=suggested,
        confidence=confidence,
        reason=reason,
        requests=profile["requests"],
        current_monthly_usd=round(current_monthly, 4),
        suggested_monthly_usd=round(suggested_monthly, 4),
        monthly_saving_usd=round(current_monthly - suggested_monthly, 4),
        evidence=json.dumps(evidence, sort_keys=True),
        rule_yaml=rule_yaml(org, feature, provider, model, suggested, target_provider),
    )


def no_saving(result: dict, confidence: str) -> str | None:
    """Why an experiment's measured costs state no saving (so it makes no recommendation), or None."""
    if confidence == "withdrawn":
        return None  # said whatever it would have saved
    now_each, then_each = result.get("live_cost_per_request"), result.get("candidate_cost_per_request")
    if not now_each or then_each is None or then_each != then_each:  # NaN: no priced pair
        return "no measured cost for one side (a model without a price, or no usage reported)"
    if then_each >= now_each:
        return "the candidate is not cheaper on this traffic"
    return None


def requests_per_month(profile: dict) -> float:
    return profile["requests"] / max(profile.get("days_observed") or 0, 1.0) * DAYS_PER_MONTH


def _evidence(profile: dict, current: float) -> dict:
    requests = profile["requests"]
    return {
        "requests": requests,
        "errors": profile.get("errors", 0),
        "days_observed": round(profile.get("days_observed") or 0, 2),
        "avg_prompt_tokens": round(profile["avg_prompt_tokens"] or 0, 1),
        "p95_prompt_tokens": profile.get("p95_prompt_tokens"),
        "avg_completion_tokens": round(profile["avg_completion_tokens"] or 0, 1),
        "p95_completion_tokens": profile.get("p95_completion_tokens"),
        "cost_usd": round(current, 6),
        "task_mix": dict(profile.get("task_mix") or {}),
    }


def rule_yaml(
    org: str, feature: str, provider: str, model: str, suggested: str, target_provider: str | None = None
) -> str:
    """The rules-file entry that would apply the recommendation (pick a free priority)."""
    rule = {
        "name": f"{org} {feature}: {model} -> {suggested}",  # the org too: the same advice may come to two orgs
        "priority": 100,
        "org": org,
        "match": {"feature": feature, "provider": provider, "model": model},
        "target": {"model": suggested, **({"provider": target_provider} if target_provider else {})},
    }
    return yaml.safe_dump([rule], sort_keys=False)


def recommend_all(
    profiles: list[dict], catalog: Catalog | None = None, results: list[dict] = ()
) -> list[Recommendation]:
    catalog = catalog or families.catalog()
    found = [r for r in (recommend(p, catalog, results) for p in profiles) if r is not None]
    return sorted(found, key=lambda r: (-RANK[r.confidence], -r.monthly_saving_usd))
