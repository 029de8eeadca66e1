"""The only package that speaks SQL: schema migrations, keys, request logs, summaries, the jobs'
tables, the rules and experiments kept in the database, and the dashboard's reads.

Everything else asks a `Store` (interface.py) that `open_store` returns for a location: a DuckDB
file's path (the embedded default, one machine) or a `postgresql://` URL (several hosts). The files
say which database they belong to:

- shared, SQL written once for both (database.py says in which dialect): keys.py, logs.py,
  summaries.py, jobs.py, shadow.py, documents.py, migrations.py, dashboard_*.py;
- DuckDB's own: duckdb_connection.py, duckdb_store.py, duckdb_collect.py (several workers' files on one host);
- PostgreSQL's own: pg_connection.py, pg_listen.py, pg_store.py.
"""

from pathlib import Path

from lectr.store import duckdb_collect as collect  # the module: collect.collect(main, sources)
from lectr.store.database import StorageError, default_db_path, is_postgres, utc_now
from lectr.store.documents import DocumentConflict
from lectr.store.duckdb_store import DuckStore
from lectr.store.interface import Store
from lectr.store.logs import STORED_DEGRADED

__all__ = [
    "STORED_DEGRADED",
    "DocumentConflict",
    "DuckStore",
    "StorageError",
    "Store",
    "collect",
    "default_db_path",
    "db_argument",
    "is_postgres",
    "open_store",
    "utc_now",
]


def db_argument(store: Store) -> str:
    """What a message suggests after `--db`: the file, else "$LECTR_DB" (a shown URL has *** for a
    password, which would not log in when pasted, and is rebuilt, not always as it was written)."""
    return '"$LECTR_DB"' if is_postgres(store.location) else store.display


def open_store(location: str | Path) -> Store:
    """The store at `location`: a `postgresql://` URL, or a DuckDB file's path."""
    location = str(location)
    if is_postgres(location):
        from lectr.store.pg_connection import checked
        from lectr.store.pg_store import PgStore  # psycopg only where PostgreSQL is used

        return PgStore(checked(location))
    if "://" in location:
        raise StorageError(
            f"cannot open {location.split('://')[0]}://...: Lectr keeps its data in a DuckDB file (give its path) "
            "or in PostgreSQL (a postgresql://user:password@host:port/database URL)"
        )
    return DuckStore(location)
