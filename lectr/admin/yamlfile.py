"""Lectr's YAML files as documents the dashboard edits: read, written back as if by hand, saved atomically.

The rules file (rulesfile.py) and the experiments file (experimentsfile.py) are each a mapping with
one key holding a list. Edits work on that list; a save replaces the file in one rename, so the
proxy's watcher reads the old file or the new one, never half of each, and it refuses to
overwrite a file someone else changed since it was read. The comment block above the key is kept.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Callable

import yaml

from lectr.common.rules import RuleError, read_rules_text, slug


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


# --- edits both files share: each returns a new list, leaving the argument unchanged ------------


def item_id(item: dict) -> str:
    """The id the proxy records for a rule or an experiment: its `id`, else its name slugged (rules.py's)."""
    return str(item.get("id") or slug(str(item.get("name") or "")))


def index_of(items: list[dict], iid: str, kind: str, error: type[RuleError]) -> int:
    for index, item in enumerate(items):
        if item_id(item) == iid:
            return index
    raise error(f"no {kind} with id {iid!r} in the {kind}s file; it may have been removed: reload the page")


def delete(items: list[dict], iid: str, kind: str, error: type[RuleError]) -> list[dict]:
    index = index_of(items, iid, kind, error)
    return items[:index] + items[index + 1 :]


def set_enabled(items: list[dict], iid: str, enabled: bool, kind: str, error: type[RuleError]) -> list[dict]:
    index = index_of(items, iid, kind, error)
    return [*items[:index], {**items[index], "enabled": enabled}, *items[index + 1 :]]
