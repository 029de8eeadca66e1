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
from lectr.store.database import Database, utc_now

DOCUMENTS = ("rules", "experiments")


class DocumentConflict(LectrError, RuntimeError):
    """The document changed since the version this save edited."""


class Documents:
    """Documents (a part of DuckStore and PgStore)."""

    db: Database

    def announce(self, topic: str) -> None: ...

    def document(self, name: str) -> tuple[str, int] | None:
        """The document's text and version; None when it was never saved."""
        with self.db.read() as s:
            if not s.has_table("documents"):
                return None
            found = s.rows("SELECT body, version FROM documents WHERE name = $name", {"name": _checked(name)})
        return (found[0][0], int(found[0][1])) if found else None

    def save_document(self, name: str, body: str, edited: int | None) -> int:
        """Store a new text; `edited`: the version it was made from (None: the document is new, or its
        text replaces whatever is there, as an import does). Returns the new version."""
        with self.db.write() as s:
            found = s.rows("SELECT version FROM documents WHERE name = $name", {"name": _checked(name)})
            current = int(found[0][0]) if found else 0
            if edited is not None and edited != current:
                raise DocumentConflict(
                    f"the {name} changed since you opened them (version {current}, you edited {edited}); "
                    "reload and make your change again"
                )
            s.execute(
                "INSERT INTO documents (name, body, version, updated_at) VALUES ($name, $body, $version, $now) "
                "ON CONFLICT (name) DO UPDATE SET body = excluded.body, version = excluded.version, "
                "updated_at = excluded.updated_at",
                {"name": name, "body": body, "version": current + 1, "now": utc_now()},
            )
        self.announce(name)
        return current + 1


def _checked(name: str) -> str:
    if name not in DOCUMENTS:
        raise ValueError(f"no document {name!r}; there are {', '.join(DOCUMENTS)}")
    return name
