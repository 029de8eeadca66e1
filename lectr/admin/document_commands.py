"""`lectr rules import|export` and `lectr experiments import|export`: the YAML files in and out of the store.

With `lectr_rules=db` every proxy on one database routes by the rules document kept there
(lectr/store/documents.py). A team keeps the file in git and imports it; an import is checked by
the proxy's own parser first, so what every proxy would reject never reaches them. The text is
stored as written, comments and all, and an export gives it back as imported or as the dashboard
last saved it.
"""

from __future__ import annotations

import sys

from lectr.admin import yamlfile
from lectr.common.experiments import parse_experiments
from lectr.common.rules import RuleError, parse_rules, read_rules_text, summary
from lectr.store import open_store


def describe(name: str, text: str, source: str) -> tuple[str, tuple[str, ...]]:
    """What the proxy would make of the text (its parser's words) and its warnings. Raises RuleError
    (ExperimentError for the experiments) naming the rule or experiment and the problem."""
    if name == "rules":
        ruleset = parse_rules(text, source)
        return summary(ruleset), ruleset.warnings
    parsed = parse_experiments(text, source)
    total = len(parsed.experiments)
    return f"{total} experiment{'' if total == 1 else 's'}, {len(parsed.running)} running", ()


def import_document(name: str, path: str, db: str) -> int:
    """Store the file at `path` as the `name` document of the store at `db`, whatever is there now."""
    try:
        text = read_rules_text(path)  # RuleError for a file that is not UTF-8
    except OSError as e:
        print(f"lectr: cannot read {path}: {e.strerror}", file=sys.stderr)
        return 1
    if not text.strip():  # a truncated file, most likely: every proxy would drop every rule at once
        raise RuleError(f"{path} is empty; to remove every one of the {name}, import a file that says '{name}: []'")
    said, warnings = describe(name, text, path)
    for warning in warnings:
        print(f"lectr: warning: {warning}", file=sys.stderr)
    store = open_store(db)
    version = store.save_document(name, text, None)
    print(f"Imported {path} into {store.display}: version {version} of the {name}, {said}.")
    print(f"Every proxy with lectr_{name}=db on this database applies it within a second.")
    return 0


def export_document(name: str, path: str | None, db: str) -> int:
    """Write the `name` document of the store at `db` to `path`, or to stdout without one."""
    found = stored(name, db)
    if found is None:
        return 1
    text, source, version = found
    if path is None:
        sys.stdout.write(text)
        return 0
    yamlfile.write_atomically(path, text)  # a proxy watching this file reads the old text or the new
    print(f"Exported version {version} of {source} to {path}.")
    return 0


def stored(name: str, db: str) -> tuple[str, str, int] | None:
    """The `name` document of the store at `db`: its text, what to call it, its version. None (said on
    stderr, with what to do) when there is none."""
    store = open_store(db)
    found = store.document(name)
    if found is None:
        nothing = ": every request passes through unchanged" if name == "rules" else ""
        print(
            f"lectr: no {name} in {store.display} yet{nothing}. Import a file: lectr {name} import FILE "
            "(with the same --db)",
            file=sys.stderr,
        )
        return None
    return found[0], f"the {name} document in {store.display}", found[1]
