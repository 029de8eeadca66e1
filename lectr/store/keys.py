"""Org keys in the DuckDB file: only their sha256 hashes are stored, never the keys.

A running proxy checks keys against the hashes it holds in memory and rereads them when
`keys_version` changes: `lectr keys` touches a stamp file beside the database whenever it
creates or revokes a key, so the proxy need not reopen the database (which the writer
changes every second) to find out.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from lectr.common.keys import NewKey, StoredKey
from lectr.common.watch import file_signature
from lectr.store.connection import connect, has_table, storage_errors, utc_now
from lectr.store.migrations import migrate


def keys_stamp(path: str | Path) -> Path:
    """Touched whenever a key is created or revoked: a running proxy rereads its keys when
    this file changes, not at every write of the event log to the same database."""
    return Path(f"{path}.keys")


class Keys:
    """The DuckDB store's org keys (a part of DuckStore)."""

    path: str

    def insert_key(self, org_id: str, new_key: NewKey) -> None:
        with connect(self.path) as con:
            migrate(con)
            con.execute(
                "INSERT INTO org_keys (key_id, org_id, key_hash, created_at) VALUES (?, ?, ?, ?)",
                [new_key.key_id, org_id, new_key.key_hash, utc_now()],
            )
        keys_stamp(self.path).touch()

    def revoke_key(self, key_id: str) -> bool:
        with connect(self.path) as con:
            migrate(con)
            found = con.execute(
                "UPDATE org_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL RETURNING key_id",
                [utc_now(), key_id],
            ).fetchall()
        keys_stamp(self.path).touch()
        return bool(found)

    def list_keys(self) -> list[tuple[str, str, datetime, datetime | None]]:
        """(key_id, org_id, created_at, revoked_at) for every key, oldest first."""
        with connect(self.path, read_only=True) as con:
            if not has_table(con, "org_keys"):
                return []
            sql = "SELECT key_id, org_id, created_at, revoked_at FROM org_keys ORDER BY created_at"
            return con.execute(sql).fetchall()

    def active_keys(self) -> list[StoredKey]:
        with storage_errors(self.path), connect(self.path, read_only=True, attempts=5) as con:
            if not has_table(con, "org_keys"):
                return []
            rows = con.execute("SELECT key_id, org_id, key_hash FROM org_keys WHERE revoked_at IS NULL").fetchall()
        return [StoredKey(*row) for row in rows]

    def has_keys(self) -> bool:
        """Whether the key store holds any key at all, revoked ones included."""
        with storage_errors(self.path), connect(self.path, read_only=True, attempts=5) as con:
            return has_table(con, "org_keys") and con.execute("SELECT count(*) FROM org_keys").fetchone()[0] > 0

    def keys_version(self) -> object:
        """Changes when keys are created or revoked (the stamp file) or the database file is replaced.

        Not the database file's own signature: the event writer changes it every second, and
        reopening DuckDB that often in the proxy's process would stall requests in flight.
        """
        try:
            inode = os.stat(self.path).st_ino
        except OSError:
            return None
        return inode, file_signature(str(keys_stamp(self.path)))
