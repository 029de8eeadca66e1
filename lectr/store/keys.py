"""Org keys: only their sha256 hashes are stored, never the keys.

A running proxy checks keys against the hashes it holds in memory and rereads them when the
store's `keys_version` changes; each store says how it tells (a stamp file beside a DuckDB
file, a notification from PostgreSQL), so creating or revoking a key here `announce`s it, in the
same transaction: a revoke that is committed is announced, and one that is not, is not.
"""

from __future__ import annotations

from datetime import datetime

from lectr.common.keys import NewKey, StoredKey
from lectr.store.database import Database, Session, utc_now

KEYS = "keys"  # what `announce` names when keys change


class Keys:
    """Org keys (a part of DuckStore and PgStore)."""

    db: Database

    def announce(self, s: Session, topic: str) -> None: ...

    def insert_key(self, org_id: str, new_key: NewKey) -> None:
        with self.db.write() as s:
            s.execute(
                "INSERT INTO org_keys (key_id, org_id, key_hash, created_at) VALUES ($id, $org, $hash, $now)",
                {"id": new_key.key_id, "org": org_id, "hash": new_key.key_hash, "now": utc_now()},
            )
            self.announce(s, KEYS)

    def revoke_key(self, key_id: str) -> bool:
        with self.db.write() as s:
            found = s.rows(
                "UPDATE org_keys SET revoked_at = $now WHERE key_id = $id AND revoked_at IS NULL RETURNING key_id",
                {"now": utc_now(), "id": key_id},
            )
            self.announce(s, KEYS)
        return bool(found)

    def list_keys(self) -> list[tuple[str, str, datetime, datetime | None]]:
        """(key_id, org_id, created_at, revoked_at) for every key, oldest first."""
        with self.db.read() as s:
            if not s.has_table("org_keys"):
                return []
            return s.rows("SELECT key_id, org_id, created_at, revoked_at FROM org_keys ORDER BY created_at")

    def active_keys(self) -> list[StoredKey]:
        with self.db.read() as s:
            if not s.has_table("org_keys"):
                return []
            rows = s.rows("SELECT key_id, org_id, key_hash FROM org_keys WHERE revoked_at IS NULL")
        return [StoredKey(*row) for row in rows]

    def has_keys(self) -> bool:
        """Whether the key store holds any key at all, revoked ones included."""
        with self.db.read() as s:
            return s.has_table("org_keys") and s.rows("SELECT count(*) FROM org_keys")[0][0] > 0
