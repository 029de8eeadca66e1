import random
from pathlib import Path

import pytest
import yaml

from lectr.common.rules import RuleError, RuleSet, load_rules_file, parse_rules, summary

VALID = """
rules:
  - name: Downgrade classifiers to mini
    priority: 2
    match: {feature: Support-Bot, task: classification, provider: OpenAI, model: gpt-4o}
    target: {provider: openai, model: gpt-4o-mini}
  - name: Everything from acme to groq
    priority: 1
    org: acme
    target: {provider: groq, model: llama-3.1-8b-instant}
  - name: Disabled catch-all
    priority: 3
    enabled: false
    target: {model: never}
  - name: Catch gpt-4o
    id: catch-4o
    priority: 4
    match: {model: gpt-4o}
    target: {model: gpt-4.1}
"""


def test_rules_are_sorted_by_priority_and_first_enabled_match_wins():
    rules = parse_rules(VALID)
    assert [r.priority for r in rules.rules] == [1, 2, 3, 4]
    # acme: priority 1 matches everything for that org.
    assert rules.first_match("acme", "support-bot", "classification", "openai", "gpt-4o").name == (
        "Everything from acme to groq"
    )
    # Another org: the priority-2 rule, matched case-insensitively on feature/task/provider.
    rule = rules.first_match("other", "SUPPORT-BOT", "Classification", "openai", "gpt-4o")
    assert (rule.target_provider, rule.target_model, rule.id) == (
        "openai",
        "gpt-4o-mini",
        "downgrade-classifiers-to-mini",
    )
    # One condition fails: falls through to the next enabled rule (priority 3 is disabled).
    assert rules.first_match("other", "support-bot", "generation", "openai", "gpt-4o").id == "catch-4o"
    # Model is matched exactly.
    assert rules.first_match("other", None, None, "openai", "GPT-4o") is None


def test_unset_conditions_are_wildcards():
    rules = parse_rules("rules:\n  - {name: all, priority: 1, target: {model: m}}\n")
    assert rules.first_match(None, None, None, "anthropic", "claude-x").name == "all"


def test_empty_and_missing_rules_mean_no_rules():
    assert parse_rules("") == RuleSet()
    assert parse_rules("rules: []").rules == ()


@pytest.mark.parametrize(
    "text, message",
    [
        ("rules: [", "not valid YAML"),
        ("rulez: []", "one key, 'rules:'"),
        ("rules:\n  - {name: a, priority: 1, target: {model: m}, colour: red}", r"rule 'a': unknown rule 'colour'"),
        (
            "rules:\n  - {name: a, priority: 1, match: {team: x}, target: {model: m}}",
            r"rule 'a': match: unknown condition 'team'",
        ),
        (
            "rules:\n  - {name: a, priority: 1, target: {model: m, region: eu}}",
            r"rule 'a': target: unknown field 'region'",
        ),
        ("rules:\n  - {name: a, priority: 1}", r"rule 'a': 'target' is required"),
        ("rules:\n  - {name: a, priority: 1, target: {}}", r"rule 'a': 'target' is required"),
        ("rules:\n  - {name: a, target: {model: m}}", r"rule 'a': 'priority' is required"),
        ("rules:\n  - {name: a, priority: 0, target: {model: m}}", r"rule 'a': 'priority'"),
        ("rules:\n  - {priority: 1, target: {model: m}}", r"rule #1: 'name' is required"),
        (
            "rules:\n  - {name: a, priority: 1, target: {model: m}}\n  - {name: b, priority: 1, target: {model: n}}",
            r"rule 'b': priority 1 is already used by rule 'a'",
        ),
        (
            "rules:\n  - {name: a, priority: 1, target: {provider: openrouter}}",
            r"rule 'a': target.provider 'openrouter' is unknown",
        ),
        (
            "rules:\n  - {name: a, priority: 1, enabled: 'yes', target: {model: m}}",
            r"rule 'a': 'enabled' must be true or false",
        ),
    ],
)
def test_invalid_rules_name_the_rule_and_the_problem(text, message):
    with pytest.raises(RuleError, match=message):
        parse_rules(text, source="rules.yaml")


def test_unknown_task_is_a_warning_not_an_error():
    rules = parse_rules("rules:\n  - {name: a, priority: 1, match: {task: translation}, target: {model: m}}")
    assert len(rules.rules) == 1
    assert "translation" in rules.warnings[0]


def test_example_rules_file_is_valid_and_routes_nothing_as_shipped():
    rules = load_rules_file("rules.example.yaml")
    assert len(rules.rules) >= 5
    assert rules.warnings == ()
    # Examples only, every one disabled: a fresh copy (run.sh's rules.yaml) changes no request.
    assert rules.enabled == ()
    assert rules.first_match(None, None, None, "openai", "o3") is None
    assert summary(rules) == (
        f"{len(rules.rules)} rules, 0 enabled: every request passes through unchanged "
        "(enable one with 'enabled: true', or on the dashboard's Rules page)"
    )


def test_example_rules_once_enabled_route_as_their_comments_say():
    rules = parse_rules(Path("rules.example.yaml").read_text().replace("enabled: false", "enabled: true"))
    assert rules.enabled == rules.rules and rules.warnings == ()
    assert summary(rules) == f"{len(rules.rules)} rules, {len(rules.rules)} enabled"

    def target(feature, task, model):
        rule = rules.first_match(None, feature, task, "openai", model)
        return rule and (rule.target_provider, rule.target_model)

    assert target("support-bot", "classification", "gpt-4o") == ("openai", "gpt-4o-mini")
    assert target(None, "extraction", "gpt-4o") == (None, "gpt-4o-mini")
    assert target(None, "reasoning", "o3") == (None, "o3")  # first match: kept on o3...
    assert target(None, None, "o3") == (None, "gpt-4.1")  # ...and the rest of o3's traffic moved down
    assert target(None, None, "gpt-4o") is None


def test_summary_says_how_many_rules_are_enabled():
    assert summary(RuleSet()) == "0 rules, 0 enabled: every request passes through unchanged"
    one_of_two = parse_rules(
        "rules:\n  - {name: a, priority: 1, target: {model: m}}\n"
        "  - {name: b, priority: 2, enabled: false, target: {model: m}}\n"
    )
    assert summary(one_of_two) == "2 rules, 1 enabled"
    assert [r.name for r in one_of_two.enabled] == ["a"]
    assert summary(parse_rules("rules:\n  - {name: a, priority: 1, target: {model: m}}\n")) == "1 rule, 1 enabled"


def test_indexed_first_match_agrees_with_trying_each_rule_in_order():
    rng = random.Random(7)
    values = {
        "org": ["acme", "globex"],
        "feature": ["bot", "search", "Bot"],
        "task": ["classification", "reasoning"],
        "provider": ["openai", "groq"],
        "model": ["gpt-4o", "gpt-4o-mini", "GPT-4o"],
    }
    for _ in range(300):
        rules = []
        for priority in rng.sample(range(1, 60), rng.randint(0, 12)):
            match = {k: rng.choice(v) for k, v in values.items() if k != "org" and rng.random() < 0.4}
            org = rng.choice(values["org"]) if rng.random() < 0.3 else None
            rules.append(
                {
                    "name": f"r{priority}",
                    "priority": priority,
                    "enabled": rng.random() < 0.8,
                    "match": match,
                    "target": {"model": "m"},
                    **({"org": org} if org else {}),
                }
            )
        ruleset = parse_rules(yaml.safe_dump({"rules": rules}))
        for _ in range(20):
            request = [rng.choice(values[k] + [None]) for k in ("org", "feature", "task")]
            request += [rng.choice(values["provider"]), rng.choice(values["model"])]
            org, feature, task, provider, model = request
            expected = next(
                (
                    r
                    for r in ruleset.rules
                    if r.enabled
                    and r.matches(
                        org, feature.lower() if feature else None, task.lower() if task else None, provider, model
                    )
                ),
                None,
            )
            assert ruleset.first_match(*request) is expected
