"""The rules file as a document the dashboard edits: read, change, validate, save atomically.

Edits work on the rules as plain mappings (what the YAML holds), so a saved file looks
like one written by hand; `rules.parse_rules` validates the result before anything is
written. A save replaces the file in one rename, so the proxy's watcher reads the old
file or the new one, never half of each, and picks it up within a second.

The file handling (`read_document`, `dump`, `replace`) is shared with the experiments file
(lectr.admin.experimentsfile), which the proxy reloads the same way.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml

from lectr.common.rules import RuleError, RuleSet, parse_rules, read_rules_text, slug

# Where a recommendation's rule goes when it does not say: after hand-written rules.
FIRST_GENERATED_PRIORITY = 100


@dataclass(frozen=True)
class RulesDoc:
    rules: list[dict] = field(default_factory=list)  # as in the file, in file order
    header: str = ""  # the comment block above `rules:`, kept verbatim on save
    signature: str = ""  # of the text read: a save refuses to overwrite a file changed since


def rule_id(rule: dict) -> str:
    """The id the proxy records for a rule: its `id`, else its name slugged (as rules.py does)."""
    return str(rule.get("id") or slug(str(rule.get("name") or "")))


def read(path: str | Path) -> RulesDoc:
    """The rules file's contents. A missing file is an empty document. Raises RuleError if unreadable."""
    return RulesDoc(*read_document(path, "rules", parse_rules))  # refusing a file the proxy would reject


def render(doc: RulesDoc, rules: list[dict]) -> str:
    return doc.header + dump("rules", rules)


def validate(rules: list[dict], source: str = "rules file") -> RuleSet:
    """The parsed rule set, with warnings (e.g. an unknown task). Raises RuleError naming the problem."""
    return parse_rules(yaml.safe_dump({"rules": rules}, sort_keys=False), source)


def save(path: str | Path, doc: RulesDoc, rules: list[dict]) -> RuleSet:
    """Validate and write `rules` in place of the document `doc` was read from, atomically."""
    ruleset = validate(rules, str(path))
    replace(path, render(doc, rules), doc.signature)
    return ruleset


# --- the file, for this document and the experiments file ---------------------------------


def read_document(
    path: str | Path, key: str, check: Callable[[str, str], object], error: type[RuleError] = RuleError
) -> tuple[list[dict], str, str]:
    """The list under `key`, the header above it and the text's signature; a missing file is
    ([], "", ""). `check(text, source)` raises (a RuleError) for a file the proxy would reject:
    it must be fixed by hand before it is edited here. A file that is not UTF-8 raises `error`."""
    try:
        text = read_rules_text(path)
    except FileNotFoundError:
        return [], "", ""
    except RuleError as e:
        raise error(str(e)) from e
    check(text, str(path))
    doc = yaml.safe_load(text) or {}
    return list(doc.get(key) or []), header(text), signature(text)


def dump(key: str, items: list[dict]) -> str:
    """The document's body as one written by hand would look: fields in their order, short mappings inline."""
    return yaml.safe_dump({key: items}, sort_keys=False, default_flow_style=None, allow_unicode=True, width=120)


def replace(path: str | Path, text: str, read_signature: str, error: type[RuleError] = RuleError) -> None:
    """Write `text` in place of the file whose text had `read_signature` ("": there was none), in one
    rename after an fsync, keeping the file's mode. Raises `error` if the file changed since it was read."""
    path = Path(path)
    try:
        current = signature(read_rules_text(path))
    except FileNotFoundError:
        current = ""
    if current != read_signature:
        raise error(f"{path} was changed by someone else since it was loaded; reload the page and edit again")
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def header(text: str) -> str:
    """The comment block above the document's key, kept verbatim on save."""
    lines = []
    for line in text.splitlines(keepends=True):
        if line.strip() and not line.lstrip().startswith("#"):
            break
        lines.append(line)
    return "".join(lines)


def signature(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# --- edits: each returns a new list, leaving the argument unchanged -----------------------


def put(rules: list[dict], rule: dict, replacing: str | None = None) -> list[dict]:
    """Add `rule`, or replace the rule whose id is `replacing` (keeping its place in the file)."""
    rule = _clean(rule)
    if replacing is None:
        return [*rules, rule]
    index = _index(rules, replacing)
    return [*rules[:index], rule, *rules[index + 1 :]]


def delete(rules: list[dict], rid: str) -> list[dict]:
    index = _index(rules, rid)
    return rules[:index] + rules[index + 1 :]


def set_enabled(rules: list[dict], rid: str, enabled: bool) -> list[dict]:
    index = _index(rules, rid)
    return [*rules[:index], {**rules[index], "enabled": enabled}, *rules[index + 1 :]]


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


def _index(rules: list[dict], rid: str) -> int:
    for index, rule in enumerate(rules):
        if rule_id(rule) == rid:
            return index
    raise RuleError(f"no rule with id {rid!r} in the rules file; it may have been removed: reload the page")
