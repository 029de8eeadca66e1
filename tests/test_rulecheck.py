import pytest

from lectr.common.rules import parse_rules
from lectr.prices import pricing
from lectr.prices.pricefile import PriceList, parse_prices
from lectr.proxy import rulecheck

RULES = """
rules:
  - {name: Known, priority: 1, match: {model: gpt-4o}, target: {model: gpt-4o-mini}}
  - {name: Misspelt, priority: 2, match: {model: gpt-4o}, target: {model: gpt-4o-mnii}}
  - {name: Provider only, priority: 3, match: {model: gpt-4o}, target: {provider: groq}}
  - {name: Known at groq, priority: 4, target: {provider: groq, model: llama-3.1-8b-instant}}
  - {name: Not at groq, priority: 5, target: {provider: groq, model: gpt-4o-mini}}
  - {name: Matched provider, priority: 6, match: {provider: anthropic}, target: {model: claude-haiku-4-5}}
  - {name: No provider by name, priority: 7, target: {model: gtp-4o}}
  - {name: Disabled typo, priority: 8, enabled: false, target: {model: gpt-4o-mnii}}
"""


@pytest.fixture(autouse=True)
def bundled_prices():
    pricing.use(None, PriceList())
    yield
    pricing.use(None, PriceList())


def names(rules) -> list[str]:
    return [r.name for r in rules]


def test_target_models_no_price_database_knows_are_reported_in_order():
    rules = parse_rules(RULES).rules
    assert names(rulecheck.unknown_target_models(rules)) == [
        "Misspelt",
        "Not at groq",  # known at openai, but the rule sends it to groq
        "No provider by name",
        "Disabled typo",  # a disabled rule's typo is still a typo
    ]


def test_the_provider_is_the_targets_then_the_matched_one_then_the_models_own():
    by_name = {r.name: r for r in parse_rules(RULES).rules}
    assert rulecheck.target_provider(by_name["Known at groq"]) == "groq"
    assert rulecheck.target_provider(by_name["Matched provider"]) == "anthropic"
    assert rulecheck.target_provider(by_name["Known"]) == "openai"  # detected from "gpt-4o-mini"
    assert rulecheck.target_provider(by_name["No provider by name"]) is None
    assert rulecheck.target_provider(by_name["Provider only"]) == "groq"


def test_a_model_priced_in_the_users_price_file_is_known():
    rules = parse_rules(RULES).rules
    pricing.use(None, parse_prices("prices:\n  - {provider: openai, model: gpt-4o-mnii, input: 1, output: 2}\n"))
    assert names(rulecheck.unknown_target_models(rules)) == ["Not at groq", "No provider by name"]


def test_no_rules_no_warnings():
    assert rulecheck.unknown_target_models([]) == []
    assert rulecheck.unknown_target_models(parse_rules("rules: []").rules) == []


def test_the_warning_names_the_rule_the_model_and_where_it_was_looked_for():
    by_name = {r.name: r for r in parse_rules(RULES).rules}
    text = rulecheck.unknown_model_warning(by_name["Not at groq"])
    assert text.startswith("rule 'Not at groq' targets model 'gpt-4o-mini': unknown model: check the spelling.")
    assert "at groq" in text
    assert "any provider Lectr recognises" in rulecheck.unknown_model_warning(by_name["No provider by name"])
