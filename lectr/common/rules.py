"""Routing rules: the YAML schema, its validation, and first-match evaluation.

Pure: no mitmproxy import, no I/O beyond `load_rules_file`. A parsed `RuleSet` is
immutable, so the proxy can build a new one aside and swap it in with one assignment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from lectr.common.errors import LectrError
from lectr.common.providers import PROVIDERS
from lectr.common.yamldoc import list_under

RULES_FILE = "rules.yaml"  # the rules file where none is named (lectr_rules, LECTR_RULES)
# lectr_rules=db (and lectr_experiments=db): not a file, the document of that name in the store at lectr_db,
# shared by every proxy on it (lectr/store/documents.py). A file called db is ./db.
IN_DB = "db"
TASKS = ("classification", "summarisation", "extraction", "generation", "reasoning")

_RULE_FIELDS = {"id", "name", "priority", "enabled", "org", "match", "target"}
_MATCH_FIELDS = {"feature", "task", "provider", "model"}
_TARGET_FIELDS = {"provider", "model"}


class RuleError(LectrError, ValueError):
    """The rules file cannot be used; the message names the rule and the problem."""


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    name: str
    priority: int
    enabled: bool = True
    org: str | None = None
    # Conditions, None = any. feature/task/provider are stored lower-cased (matched
    # case-insensitively), model as written (matched exactly).
    feature: str | None = None
    task: str | None = None
    provider: str | None = None
    model: str | None = None
    target_provider: str | None = None
    target_model: str | None = None

    def matches(self, org: str | None, feature: str | None, task: str | None, provider: str, model: str) -> bool:
        """Arguments as `RuleSet.first_match` passes them: feature/task/provider lower-cased."""
        return (
            (self.org is None or self.org == org)
            and (self.feature is None or self.feature == feature)
            and (self.task is None or self.task == task)
            and (self.provider is None or self.provider == provider)
            and (self.model is None or self.model == model)
        )


_CONDITIONS = ("org", "feature", "task", "provider", "model")


@dataclass(frozen=True, slots=True)
class RuleSet:
    rules: tuple[Rule, ...] = ()  # every rule, in priority order
    warnings: tuple[str, ...] = ()
    _active: tuple[Rule, ...] = field(default=(), repr=False)
    _index: tuple[tuple[dict[str, int], int], ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        active = tuple(r for r in self.rules if r.enabled)
        object.__setattr__(self, "_active", active)
        object.__setattr__(self, "_index", tuple(_condition_index(active, name) for name in _CONDITIONS))

    @property
    def enabled(self) -> tuple[Rule, ...]:
        """The rules evaluated, in priority order (a disabled rule is invisible to routing)."""
        return self._active

    def first_match(
        self, org: str | None, feature: str | None, task: str | None, provider: str, model: str
    ) -> Rule | None:
        """The enabled rule with the lowest priority number whose conditions all hold.

        The same answer as trying `Rule.matches` in priority order, in time that does not
        grow with the number of rules: one dict lookup and one AND per condition.
        """
        values = (org, feature.lower() if feature else None, task.lower() if task else None, provider.lower(), model)
        candidates = -1  # every rule
        for (by_value, wildcard), value in zip(self._index, values):
            candidates &= by_value.get(value, wildcard) if value is not None else wildcard
            if not candidates:
                return None
        return self._active[(candidates & -candidates).bit_length() - 1]


def _condition_index(rules: tuple[Rule, ...], name: str) -> tuple[dict[str, int], int]:
    """For one condition, as bit sets over `rules` (bit i is rules[i], so the lowest set bit
    is the first by priority): the rules that hold for each value named in some rule, and
    the rules that hold for any other value (those that do not set the condition)."""
    wildcard = 0
    named: dict[str, int] = {}
    for i, rule in enumerate(rules):
        value = getattr(rule, name)
        if value is None:
            wildcard |= 1 << i
        else:
            named[value] = named.get(value, 0) | 1 << i
    return {value: bits | wildcard for value, bits in named.items()}, wildcard


def parse_rules(text: str, source: str = "rules file") -> RuleSet:
    """Parse and validate a rules document. Raises RuleError naming the rule and the problem."""
    items = list_under("rules", text, source, RuleError)
    if items is None:
        return RuleSet()

    rules: list[Rule] = []
    warnings: list[str] = []
    seen_priority: dict[int, str] = {}
    seen_id: dict[str, str] = {}
    for index, item in enumerate(items, start=1):
        rule = parse_rule(item, source, index, warnings)
        where = f"{source}: rule {rule.name!r}"
        if rule.priority in seen_priority:
            raise RuleError(
                f"{where}: priority {rule.priority} is already used by rule {seen_priority[rule.priority]!r}; "
                "priorities must be unique"
            )
        if rule.id in seen_id:
            raise RuleError(f"{where}: id {rule.id!r} is already used by rule {seen_id[rule.id]!r}")
        seen_priority[rule.priority] = rule.name
        seen_id[rule.id] = rule.name
        rules.append(rule)
    rules.sort(key=lambda r: r.priority)
    return RuleSet(tuple(rules), tuple(warnings))


def summary(rules: RuleSet) -> str:
    """How many rules are in force, as the proxy's log and `lectr rules check` say it.

    "6 rules, 0 enabled: ..." rather than "6 rules": a file of examples, all disabled, looks
    like routing is on when it is not (rules.example.yaml is such a file).
    """
    total, enabled = len(rules.rules), len(rules.enabled)
    count = f"{total} rule{'' if total == 1 else 's'}, {enabled} enabled"
    if not enabled:
        how = " (enable one with 'enabled: true', or on the dashboard's Rules page)" if total else ""
        return f"{count}: every request passes through unchanged{how}"
    return count


def load_rules_file(path: str | Path) -> RuleSet:
    return parse_rules(read_rules_text(path), source=str(path))


def read_rules_text(path: str | Path) -> str:
    """The file's text; RuleError when it is not UTF-8 (YAML's own encoding)."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RuleError(f"{path}: not UTF-8 text (byte {e.start}): save it as UTF-8") from e


def parse_rule(item: object, source: str, index: int, warnings: list[str]) -> Rule:
    """One rule of a document (the experiments file's conditions are parsed by it too)."""
    where = f"{source}: rule #{index}"
    if not isinstance(item, dict):
        raise RuleError(f"{where}: each rule must be a mapping with name, priority, match and target")
    name = item.get("name")
    if not isinstance(name, str) or not name.strip():
        raise RuleError(f"{where}: 'name' is required (a non-empty string)")
    where = f"{source}: rule {name.strip()!r}"
    _no_unknown(item, _RULE_FIELDS, where, "rule")

    priority = item.get("priority")
    if not isinstance(priority, int) or isinstance(priority, bool) or priority < 1:
        raise RuleError(f"{where}: 'priority' is required, a whole number from 1 (evaluated first)")
    enabled = item.get("enabled", True)
    if not isinstance(enabled, bool):
        raise RuleError(f"{where}: 'enabled' must be true or false")
    org = _optional_str(item, "org", where)
    rule_id = _optional_str(item, "id", where) or slug(name)

    match = item.get("match") or {}
    if not isinstance(match, dict):
        raise RuleError(f"{where}: 'match' must be a mapping of feature, task, provider, model")
    _no_unknown(match, _MATCH_FIELDS, f"{where}: match", "condition")
    feature = _optional_str(match, "feature", where)
    task = _optional_str(match, "task", where)
    provider = _optional_str(match, "provider", where)
    model = _optional_str(match, "model", where)
    if task and task.lower() not in TASKS:
        warnings.append(f"{where}: task {task!r} is not one of {', '.join(TASKS)}; the rule can only match it as sent")
    if provider and provider.lower() not in PROVIDERS:
        raise RuleError(f"{where}: match.provider {provider!r} is unknown; use one of {', '.join(PROVIDERS)}")

    target = item.get("target")
    if not isinstance(target, dict) or not any(target.get(k) for k in _TARGET_FIELDS):
        raise RuleError(f"{where}: 'target' is required, with a model and/or a provider")
    _no_unknown(target, _TARGET_FIELDS, f"{where}: target", "field")
    target_provider = _optional_str(target, "provider", where)
    target_model = _optional_str(target, "model", where)
    if target_provider and target_provider.lower() not in PROVIDERS:
        raise RuleError(f"{where}: target.provider {target_provider!r} is unknown; use one of {', '.join(PROVIDERS)}")

    return Rule(
        id=rule_id,
        name=name.strip(),
        priority=priority,
        enabled=enabled,
        org=org,
        feature=feature.lower() if feature else None,
        task=task.lower() if task else None,
        provider=provider.lower() if provider else None,
        model=model,
        target_provider=target_provider.lower() if target_provider else None,
        target_model=target_model,
    )


def _no_unknown(mapping: dict, allowed: set[str], where: str, what: str) -> None:
    unknown = sorted(set(map(str, mapping)) - allowed)
    if unknown:
        raise RuleError(
            f"{where}: unknown {what} {', '.join(map(repr, unknown))}; allowed: {', '.join(sorted(allowed))}"
        )


def _optional_str(mapping: dict, key: str, where: str) -> str | None:
    value = mapping.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise RuleError(f"{where}: {key!r} must be a non-empty string")
    return value.strip()


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "rule"
