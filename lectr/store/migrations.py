"""Schema migrations: apply the schema's history (lectr/store/schema.py) to a database.

`migrate` applies, in a transaction each, the migrations a database has not seen, and
records them in `_migrations`. `schema_state` tells the dashboard a database this code is too
old for (a newer Lectr migrated it) from one it can bring up to date.
"""

from __future__ import annotations

from lectr.store.database import Session, utc_now
from lectr.store.schema import MIGRATIONS

__all__ = ["MIGRATIONS", "migrate", "schema_state"]


def migrate(session: Session) -> list[str]:
    """Apply the migrations this database has not seen, in a transaction each; return their names."""
    session.execute("CREATE TABLE IF NOT EXISTS _migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMP)")
    done = {row[0] for row in session.rows("SELECT name FROM _migrations")}
    applied = []
    for migration in MIGRATIONS:
        if migration.__name__ in done:
            continue
        with session.transaction():
            migration(session)
            done_now = {"name": migration.__name__, "now": utc_now()}
            session.execute("INSERT INTO _migrations VALUES ($name, $now)", done_now)
        applied.append(migration.__name__)
    return applied


def schema_state(session: Session) -> str:
    """empty (no Lectr tables yet), old, newer (than this code), or ok."""
    if not session.has_table("_migrations"):
        return "empty"
    done = {row[0] for row in session.rows("SELECT name FROM _migrations")}
    known = {m.__name__ for m in MIGRATIONS}
    if done - known:
        return "newer"
    return "ok" if done == known else "old"
