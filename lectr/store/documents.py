"""The rules and experiments files kept in the database: `lectr_rules=db` and `lectr_experiments=db`.

With proxies on several hosts, one file on one host is no longer the place to edit rules. The
document table (migration m012) holds each file's YAML text as a person wrote it, comments and
all, so `lectr rules import` and `export` move it between git and the database unchanged, and the
dashboard edits it as it edits the file (lectr/admin/yamlfile.py). Each save names the version it
edited: a save over someone else's newer one is refused, as the file's signature refuses it.
A proxy rereads a document when the store announces it changed (`document_version`).
"""

from __future__ import annotations

from lectr.common.errors import LectrError
from lectr.store.database import Database, Session, utc_now

DOCUMENTS = ("rules", "experiments")


class DocumentConflict(LectrError, RuntimeError):
    """The document changed since the version this save edited."""


class Documents:
    """Documents (a part of DuckStore and PgStore)."""

    db: Database

    def announce(self, s: Session, topic: str) -> None: ...

    def document(self, name: str) -> tuple[str, int] | None:
        """The document's text and version; None when it was never saved."""
        with self.db.read() as s:
            if not s.has_table("documents"):
                return None
            found = s.rows("SELECT body, version FROM documents WHERE name = $name", {"name": _checked(name)})
        return (found[0][0], int(found[0][1])) if found else None

    def save_document(self, name: str, body: str, edited: int | None) -> int:
        """Store a new text; `edited`: the version it was made from (None: the document is new, or its
        text replaces whatever is there, as an import does). Returns the new version.

        The version is checked by the write itself (`WHERE version = $edited`), not read first: of two
        saves of one version at the same moment, one is stored and the other refused."""
        params = {"name": _checked(name), "body": body, "now": utc_now()}
        with self.db.write() as s:
            if edited is None:
                found = s.rows(
                    "INSERT INTO documents (name, body, version, updated_at) VALUES ($name, $body, 1, $now) "
                    "ON CONFLICT (name) DO UPDATE SET body = excluded.body, version = documents.version + 1, "
                    "updated_at = excluded.updated_at RETURNING version",
                    params,
                )
            elif edited == 0:  # the page showed no document yet
                found = s.rows(
                    "INSERT INTO documents (name, body, version, updated_at) VALUES ($name, $body, 1, $now) "
                    "ON CONFLICT (name) DO NOTHING RETURNING version",
                    params,
                )
            else:
                found = s.rows(
                    "UPDATE documents SET body = $body, version = version + 1, updated_at = $now "
                    "WHERE name = $name AND version = $edited RETURNING version",
                    params | {"edited": edited},
                )
            if not found:
                current = s.rows("SELECT version FROM documents WHERE name = $name", {"name": name})
                raise DocumentConflict(
                    f"the {name} changed since you opened them (version {current[0][0] if current else 0}, "
                    f"you edited {edited}); reload and make your change again"
                )
            self.announce(s, name)
        return int(found[0][0])


def _checked(name: str) -> str:
    if name not in DOCUMENTS:
        raise ValueError(f"no document {name!r}; there are {', '.join(DOCUMENTS)}")
    return name
