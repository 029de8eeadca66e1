"""Recommendations: cheaper same-family models per feature, with confidence driven by the task type."""

import json
from dataclasses import replace
from decimal import Decimal

import pytest
import yaml
from genai_prices import data_snapshot
from genai_prices.data_snapshot import DataSnapshot
from genai_prices.types import ClauseEquals, ModelPrice

from lectr.admin import rulesfile
from lectr.common.rules import parse_rules
from lectr.common.usage import Usage
from lectr.jobs.recommend import judge, recommend, recommend_all, rule_yaml
from lectr.prices import families, pricing
from lectr.prices.families import TiersError, load_tiers, parse_tiers
from lectr.prices.pricefile import PriceList

from helpers import traffic_profile as _profile

CATALOG = families.catalog()

# $ per million tokens (input, output), to check the savings independently of genai-prices.
PRICES = {"gpt-4o": (2.5, 10.0), "gpt-4o-mini": (0.15, 0.6)}


def _place(provider: str, model: str) -> tuple[tuple[str, str], int] | None:
    found = CATALOG.find(provider, model)
    return found and (found.family, found.rank)


def test_families_are_read_from_the_price_data():
    assert _place("openai", "gpt-4o") == (("gpt-4o", "4"), 1)
    assert _place("openai", "gpt-4o-2024-08-06") == _place("openai", "gpt-4o")  # dated names count as the model
    assert _place("openai", "gpt-4o-mini") == (("gpt-4o", "4"), 2)
    assert _place("openai", "gpt-4o-mini-2024-07-18") == _place("openai", "gpt-4o-mini")
    assert _place("openai", "gpt-5-mini") == (("gpt", "5"), 2)
    assert _place("openai", "gpt-5.5") == _place("openai", "gpt-5") == (("gpt", "5"), 1)  # one generation
    assert _place("anthropic", "claude-opus-5") == _place("anthropic", "claude-opus-5-5") == (("claude", "5"), 1)
    assert _place("anthropic", "claude-3-5-haiku-latest") == (("claude", "3"), 3)  # the older naming
    assert _place("gemini", "gemini-3.5-flash-lite") == (("gemini", "3"), 3)
    assert _place("groq", "llama-3.1-8b-instant") == (("llama", "3"), -8)  # open weights rank by size
    assert _place("azure", "gpt-5.5") == _place("openai", "gpt-5.5")
    assert _place("openai", "gpt-4o-realtime") is None  # another modality
    assert _place("openai", "gpt-5.3-codex") is None  # a tier word nobody ranked: another product
    assert _place("openai", "claude-sonnet-4-5") is None
    assert _place("nobody", "gpt-4o") is None


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


# --- today's models, from the price data --------------------------------------------------

TYPICAL = Usage(500, 100)  # the profile _profile() describes


def _cost(provider: str, model: str) -> float:
    return pricing.cost_usd(provider, model, TYPICAL)


# Each model, with the candidate for classification (the family's smallest) and for
# summarisation (one tier down), as the bundled genai-prices data has them.
TODAY = [
    ("openai", "gpt-5.5", "gpt-5.4-nano", "gpt-5.4-mini"),  # no 5.5 mini yet: the latest release before
    ("openai", "gpt-5.4-mini", "gpt-5.4-nano", "gpt-5.4-nano"),
    ("openai", "gpt-6-sol", "gpt-6-luna", "gpt-6.1-terra"),  # codename tiers from lectr/tiers.yaml
    ("anthropic", "claude-sonnet-5-5", "claude-haiku-5-5", "claude-haiku-5-5"),
    ("anthropic", "claude-opus-5", "claude-haiku-5-5", "claude-sonnet-5"),
    ("gemini", "gemini-3.5-flash", "gemini-3.5-flash-lite", "gemini-3.5-flash-lite"),
    ("gemini", "gemini-3.1-pro-preview", "gemini-3.1-flash-lite", "gemini-3.5-flash"),  # not 3-flash-preview
    ("xai", "grok-4.5", "grok-4-1-fast-non-reasoning", "grok-4-1-fast-non-reasoning"),
    ("mistral", "mistral-large-4", "mistral-small-latest", "mistral-small-latest"),  # medium costs more
]


@pytest.mark.parametrize("provider, model, smallest, one_down", TODAY)
def test_todays_models_get_a_cheaper_sibling(provider, model, smallest, one_down):
    for task, expected in (("classification", smallest), ("summarisation", one_down)):
        rec = recommend(_profile(provider=provider, model_actual=model, task_mix={task: 400}), CATALOG)
        assert (rec.suggested_model, rec.confidence) == (expected, "high")
        assert _cost(provider, expected) < _cost(provider, model)
        assert CATALOG.find(provider, expected).family == CATALOG.find(provider, model).family


def test_claude_haiku_5_5_is_its_generations_cheapest():
    here = CATALOG.find("anthropic", "claude-haiku-5-5")
    others = [m.name for m in CATALOG.family("anthropic", here) if m.name != here.name]
    assert {"claude-opus-5", "claude-sonnet-5-5", "claude-opus-5-5"} <= set(others)
    assert all(_cost("anthropic", m) > _cost("anthropic", here.name) for m in others)
    assert recommend(_profile(provider="anthropic", model_actual="claude-haiku-5-5"), CATALOG) is None


def test_deepseek_v3_2_has_nothing_cheaper_in_its_generation():
    here = CATALOG.find("deepseek", "deepseek-v3.2")
    assert [m.name for m in CATALOG.family("deepseek", here)] == ["deepseek-v3.2", "deepseek-v3.2-exp"]
    assert _cost("deepseek", "deepseek-v3.2-exp") > _cost("deepseek", "deepseek-v3.2")
    # deepseek-v4-flash can be cheaper (off-peak), but it is the next generation, not a smaller V3.
    assert CATALOG.find("deepseek", "deepseek-v4-flash").family != here.family
    assert recommend(_profile(provider="deepseek", model_actual="deepseek-v3.2"), CATALOG) is None


def test_qwen3_8_27b_has_no_smaller_qwen_at_groq():
    # The only other Qwen 3 at Groq, qwen3-32b, is cheaper but larger (and older): a move to
    # it is not a move to a smaller tier, which is all Lectr proposes.
    here = CATALOG.find("groq", "qwen/qwen3.8-27b")
    [other] = [m for m in CATALOG.family("groq", here) if m.name != here.name]
    assert other.name == "qwen/qwen3-32b" and other.rank < here.rank
    assert CATALOG.smaller("groq", here) == []
    assert recommend(_profile(provider="groq", model_actual="qwen/qwen3.8-27b"), CATALOG) is None


def test_done_when_a_claude_sonnet_5_5_classifier_goes_to_a_cheaper_claude_with_high_confidence():
    rec = recommend(_profile(provider="anthropic", model_actual="claude-sonnet-5-5", task_mix={"classification": 400}))
    assert (rec.suggested_model, rec.confidence) == ("claude-haiku-5-5", "high")
    assert rec.suggested_monthly_usd < rec.current_monthly_usd
    rule = yaml.safe_load(rec.rule_yaml)[0]
    assert rule["match"] == {"feature": "support-bot", "provider": "anthropic", "model": "claude-sonnet-5-5"}


@pytest.mark.parametrize("provider, model", [(p, m) for p, m, _, _ in TODAY])
def test_reasoning_on_todays_models_is_never_downgraded(provider, model):
    huge = _profile(provider=provider, model_actual=model, requests=100_000, task_mix={"reasoning": 400})
    assert recommend(huge, CATALOG) is None


def test_previews_retired_and_other_modalities_are_never_proposed():
    proposable = {m.name for m in CATALOG.smaller("gemini", CATALOG.find("gemini", "gemini-3.1-pro-preview"))}
    assert "gemini-3-flash-preview" not in proposable and "gemini-3.1-flash-lite" in proposable
    assert CATALOG.find("gemini", "gemini-2.0-flash").proposable is False  # deprecated
    assert CATALOG.find("mistral", "mistral-medium-2312").proposable is False  # "Retired on ..." in the data
    assert CATALOG.find("groq", "llama-3.2-1b-preview").proposable is False
    for provider, model in [("openai", "gpt-4o-mini-tts"), ("openai", "text-embedding-3-small"),
                            ("openai", "gpt-realtime-mini"), ("gemini", "gemini-3.1-flash-image-preview"),
                            ("groq", "meta-llama/llama-guard-4-12b"), ("openai", "gpt-5-image-mini")]:  # fmt: skip
        assert CATALOG.find(provider, model) is None
    gpt5 = {m.name for m in CATALOG.smaller("openai", CATALOG.find("openai", "gpt-5.5"))}
    assert not {n for n in gpt5 if any(w in n for w in ("image", "codex", "cyber", "audio"))}


def test_a_tie_goes_to_the_non_reasoning_variant():
    fast = {m.name: m.reasoning for m in CATALOG.smaller("xai", CATALOG.find("xai", "grok-4.5"))}
    assert fast["grok-4-1-fast-reasoning"] and not fast["grok-4-1-fast-non-reasoning"]
    assert _cost("xai", "grok-4-1-fast-reasoning") == _cost("xai", "grok-4-1-fast-non-reasoning")


def test_a_user_tiers_file_extends_lectrs(tmp_path, monkeypatch):
    assert CATALOG.find("gemini", "gemini-4-argon") is None  # a codename Lectr does not rank
    user = tmp_path / "tiers.yaml"
    user.write_text("tiers:\n  gemini: [argon, pro, flash, flash-lite]\nnot_chat: [lite]\n")
    monkeypatch.setenv("LECTR_TIERS", str(user))
    tiers = load_tiers()
    assert tiers.ranks["gemini"]["argon"] == 0 and tiers.ranks["anthropic"] == load_tiers("").ranks["anthropic"]
    assert {"lite", "tts"} <= tiers.not_chat  # words are added to Lectr's
    catalog = families.catalog()
    assert catalog.find("gemini", "gemini-4-argon").rank == 0
    rec = recommend(_profile(provider="gemini", model_actual="gemini-3.5-flash", task_mix={"classification": 400}))
    assert rec is None  # the user's not_chat word "lite" removed flash-lite, the only tier below flash


def test_a_model_in_newer_price_data_is_proposed_at_once():
    # Claude 6 is in no data Lectr ships: it arrives with `lectr prices update`.
    bundled = next(p for p in data_snapshot.get_snapshot().providers if p.id == "anthropic")
    sonnet_5_5 = next(m for m in bundled.models if m.id == "claude-sonnet-5-5")
    new = [
        replace(sonnet_5_5, id=name, match=ClauseEquals(equals=name), prices=ModelPrice(input_mtok=i, output_mtok=o))
        for name, i, o in [("claude-sonnet-6", Decimal(2), Decimal(10)), ("claude-haiku-6", Decimal(1), Decimal(5))]
    ]
    pricing.use(DataSnapshot([replace(bundled, models=new)], from_auto_update=True), PriceList())
    try:
        rec = recommend(
            _profile(provider="anthropic", model_actual="claude-sonnet-6", task_mix={"classification": 400})
        )
        assert (rec.suggested_model, rec.confidence) == ("claude-haiku-6", "high")
        assert families.catalog().find("anthropic", "claude-haiku-5-5") is not None  # the bundled data still counts
    finally:
        pricing.use(None, PriceList())


def test_without_a_tiers_entry_a_provider_gets_no_recommendation():
    tiers = load_tiers()
    bare = families.Catalog([data_snapshot.get_snapshot()], replace(tiers, ranks={}))
    assert bare.find("anthropic", "claude-sonnet-5-5") is None
    assert bare.find("groq", "llama-3.3-70b-versatile") is not None  # sizes need no tiers


@pytest.mark.parametrize(
    "text, match",
    [
        ("tiers: [opus]", "tiers: expected a mapping of provider"),
        ("models: {}", "expected a mapping with 'tiers:'"),
        ("tiers:\n  groq: [big]", "tiers for 'groq': expected one of"),
        ("tiers:\n  openai: mini", "expected a list of tier words"),
        ("tiers:\n  openai: [mini, mini]", "'mini' must be a word listed once"),
        ("not_chat: image", "not_chat: expected a list of words"),
        ("tiers: [", "not valid YAML"),
    ],
)
def test_a_bad_tiers_file_says_what_is_wrong(text, match):
    with pytest.raises(TiersError, match=match):
        parse_tiers(text, "my-tiers.yaml")


def test_a_missing_tiers_file_says_how_to_fix_it(tmp_path):
    with pytest.raises(TiersError, match="cannot read the tiers file .* fix or unset LECTR_TIERS"):
        load_tiers(tmp_path / "nope.yaml")


def test_the_same_advice_for_two_orgs_becomes_two_rules_side_by_side():
    rules: list[dict] = []
    for org in ("acme", "globex"):
        rule = rulesfile.from_recommendation(rules, rule_yaml(org, "bot", "openai", "gpt-4o", "gpt-4o-mini"), False)
        rules = rulesfile.put(rules, rule)
    assert [(r["org"], r["name"]) for r in rules] == [
        ("acme", "acme bot: gpt-4o -> gpt-4o-mini"),
        ("globex", "globex bot: gpt-4o -> gpt-4o-mini"),
    ]
