"""Lectr's YAML documents as the dashboard edits them: read, written back as if by hand, saved whole.

The rules (rulesfile.py) and the experiments (experimentsfile.py) are each a mapping with one key
holding a list. Edits work on that list. The document lives in a file, or (`lectr_rules=db`) in the
store, shared by every proxy on it: `source()` gives either as a `YamlFile` or a `StoredDocument`,
with the same two operations, so the editing is written once. A save replaces the whole text at
once (a file in one rename, so the proxy's watcher reads the old file or the new one, never half
of each; a document in one transaction), and it refuses to overwrite one someone else changed since
it was read. The comment block above the key is kept.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import yaml

from lectr.common.rules import IN_DB, RuleError, read_rules_text, slug
from lectr.store import DocumentConflict, Store, open_store


@dataclass(frozen=True)
class YamlFile:
    """A YAML file; its version is its text's signature."""

    path: str

    def __str__(self) -> str:
        return self.path

    def read(self) -> tuple[str, str] | None:
        """The text and its version; None when there is no file. A file that is not UTF-8 raises RuleError."""
        try:
            text = read_rules_text(self.path)
        except FileNotFoundError:
            return None
        return text, signature(text)

    def replace(self, text: str, version: str, error: type[RuleError]) -> None:
        """Write `text` in place of the file read at `version` ("": there was none). Raises `error` if the
        file changed since."""
        found = self.read()
        if (found[1] if found else "") != version:
            raise error(f"{self.path} was changed by someone else since it was loaded; reload the page and edit again")
        write_atomically(self.path, text)


@dataclass(frozen=True)
class StoredDocument:
    """The document `name` (rules or experiments) in a store; its version is the store's count of saves."""

    store: Store
    name: str

    def __str__(self) -> str:
        return f"the {self.name} document in {self.store.display}"  # never the location: it may hold a password

    def read(self) -> tuple[str, str] | None:
        """The text and its version; None when it was never saved. Raises StorageError when unreachable."""
        found = self.store.document(self.name)
        return None if found is None else (found[0], str(found[1]))

    def replace(self, text: str, version: str, error: type[RuleError]) -> None:
        """Save `text` as the next version of the document read at `version` ("": there was none). Raises
        `error` if it was saved since."""
        try:
            self.store.save_document(self.name, text, int(version or 0))
        except DocumentConflict as e:
            raise error(
                f"{self} was changed by someone else since it was loaded; reload the page and edit again"
            ) from e


Source = YamlFile | StoredDocument


def source(where: str, db: str, name: str) -> Source:
    """Where the proxy's setting `where` (lectr_rules, lectr_experiments) puts the document `name`: the
    file at that path, or (IN_DB) the document in the store at `db`."""
    return StoredDocument(open_store(db), name) if where == IN_DB else YamlFile(where)


def _at(where: str | Path | Source) -> Source:
    """A Source as given; a path: that file."""
    return where if isinstance(where, (YamlFile, StoredDocument)) else YamlFile(str(where))


def read_document(
    where: str | Path | Source, key: str, check: Callable[[str, str], object], error: type[RuleError] = RuleError
) -> tuple[list[dict], str, str]:
    """The list under `key`, the header above it and the version read; a missing document is
    ([], "", ""). `check(text, source)` raises (a RuleError) for a document the proxy would reject:
    it must be fixed by hand before it is edited here. A file that is not UTF-8 raises `error`."""
    where = _at(where)
    try:
        found = where.read()
    except RuleError as e:
        raise error(str(e)) from e
    if found is None:
        return [], "", ""
    text, version = found
    try:
        check(text, str(where))
    except RuleError as e:
        if isinstance(where, StoredDocument):  # fixed by hand out of the database, and put back
            raise error(f"{e} (fix it in the file 'lectr {key} export' writes, then 'lectr {key} import' it)") from e
        raise
    doc = yaml.safe_load(text) or {}
    return list(doc.get(key) or []), header(text), version


def dump(key: str, items: list[dict]) -> str:
    """The document's body as one written by hand would look: fields in their order, short mappings inline."""
    return yaml.safe_dump({key: items}, sort_keys=False, default_flow_style=None, allow_unicode=True, width=120)


def replace(where: str | Path | Source, text: str, version: str, error: type[RuleError] = RuleError) -> None:
    """Put `text` in place of the document read at `version` ("": there was none). Raises `error` if it
    changed since it was read."""
    _at(where).replace(text, version, error)


def write_atomically(path: str | Path, text: str) -> None:
    """Replace the file in one rename after an fsync, keeping its mode (a new file: 0644)."""
    path = Path(path)
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
