"""The rules as a document the dashboard edits: read, change, validate, save whole.

Edits work on the rules as plain mappings (what the YAML holds), so a saved file looks
like one written by hand; `rules.parse_rules` validates the result before anything is
written. A save replaces the file in one rename (or the rules document in the store, with
`lectr_rules=db`), so the proxy's watcher reads the old rules or the new ones, never half
of each, and picks them up within a second.

Where the rules are, and how they are saved, is lectr.admin.yamlfile's, which the experiments
(lectr.admin.experimentsfile) share.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lectr.admin import yamlfile
from lectr.admin.yamlfile import Source, dump, read_document, replace
from lectr.common.rules import RuleError, RuleSet, parse_rules

# Where a recommendation's rule goes when it does not say: after hand-written rules.
FIRST_GENERATED_PRIORITY = 100


@dataclass(frozen=True)
class RulesDoc:
    rules: list[dict] = field(default_factory=list)  # as in the file, in file order
    header: str = ""  # the comment block above `rules:`, kept verbatim on save
    version: str = ""  # of the text read ("": none): a save refuses to overwrite rules changed since


rule_id = yamlfile.item_id  # the id the proxy records for a rule: its `id`, else its name slugged


def read(where: str | Path | Source) -> RulesDoc:
    """The rules in a file (a path) or the store (yamlfile.source). Missing ones are an empty document.
    Raises RuleError if unreadable, StorageError if the store cannot be reached."""
    return RulesDoc(*read_document(where, "rules", parse_rules))  # refusing rules the proxy would reject


def render(doc: RulesDoc, rules: list[dict]) -> str:
    return doc.header + dump("rules", rules)


def validate(rules: list[dict], source: str = "rules file") -> RuleSet:
    """The parsed rule set, with warnings (e.g. an unknown task). Raises RuleError naming the problem."""
    return parse_rules(yaml.safe_dump({"rules": rules}, sort_keys=False), source)


def save(where: str | Path | Source, doc: RulesDoc, rules: list[dict]) -> RuleSet:
    """Validate and write `rules` in place of the document `doc` was read from, whole."""
    ruleset = validate(rules, str(where))
    replace(where, render(doc, rules), doc.version)
    return ruleset


# --- edits: each returns a new list, leaving the argument unchanged -----------------------


def put(rules: list[dict], rule: dict, replacing: str | None = None) -> list[dict]:
    """Add `rule`, or replace the rule whose id is `replacing` (keeping its place in the file)."""
    rule = _clean(rule)
    if replacing is None:
        return [*rules, rule]
    index = yamlfile.index_of(rules, replacing, "rule", RuleError)
    return [*rules[:index], rule, *rules[index + 1 :]]


def delete(rules: list[dict], rid: str) -> list[dict]:
    return yamlfile.delete(rules, rid, "rule", RuleError)


def set_enabled(rules: list[dict], rid: str, enabled: bool) -> list[dict]:
    return yamlfile.set_enabled(rules, rid, enabled, "rule", RuleError)


def move(rules: list[dict], rid: str, step: int) -> list[dict]:
    """Swap priorities with the neighbour `step` (-1 earlier, +1 later) in evaluation order."""
    order = sorted(range(len(rules)), key=lambda i: rules[i].get("priority", 0))
    at = next(pos for pos, i in enumerate(order) if rule_id(rules[i]) == rid)
    other = at + step
    if not 0 <= other < len(order):
        return list(rules)
    a, b = order[at], order[other]
    moved = list(rules)
    moved[a] = {**rules[a], "priority": rules[b].get("priority")}
    moved[b] = {**rules[b], "priority": rules[a].get("priority")}
    return moved


def free_priority(rules: list[dict], at_least: int = 1) -> int:
    used = {r.get("priority") for r in rules}
    priority = at_least
    while priority in used:
        priority += 1
    return priority


def from_recommendation(rules: list[dict], rule_yaml: str, enabled: bool) -> dict:
    """The recommendation's rule (rules-file YAML), at a free priority and enabled or not."""
    (rule,) = yaml.safe_load(rule_yaml)
    taken = {rule_id(r) for r in rules}
    if rule_id(rule) in taken:
        raise RuleError(f"a rule with id {rule_id(rule)!r} is already in the rules file")
    wanted = rule.get("priority") or FIRST_GENERATED_PRIORITY
    return {**rule, "priority": free_priority(rules, wanted), "enabled": enabled}


def _clean(rule: dict) -> dict:
    """Drop empty fields, so a form's blank inputs mean "any" rather than an empty string."""
    out = {}
    for key, value in rule.items():
        if isinstance(value, dict):
            value = {k: v.strip() if isinstance(v, str) else v for k, v in value.items() if v not in (None, "")}
            if key == "match" and not value:
                continue
        elif isinstance(value, str):
            value = value.strip()
        if value in (None, ""):
            continue
        out[key] = value
    return out
