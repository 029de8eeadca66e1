"""`Database`: what the store's shared modules need of either database, so their SQL is written once.

The modules that hold no database's name (keys.py, logs.py, summaries.py, jobs.py, shadow.py,
documents.py, migrations.py and the dashboard_* reads) write their SQL in the dialect DuckDB and
PostgreSQL share, with named parameters spelled `$name`, and run it on a `Session` that one of
`Database.read()` and `Database.write()` opens:

- duckdb_connection.py: a DuckDB file, opened for the moment of the session;
- pg_connection.py: a PostgreSQL server, a pooled connection, the parameters and the one type
  name DuckDB spells differently (DOUBLE) translated there.

Where the two really differ (appending a batch, noticing a change of keys or rules, running a
job on one host only) the store classes themselves differ: duckdb_store.py and pg_store.py.

The shared dialect, for whoever writes a query here: `GROUP BY 1, 2` (not ALL), explicit column
lists (not BY NAME), `percentile_cont(p) WITHIN GROUP (ORDER BY x)`, `(array_agg(x ORDER BY ts
DESC))[1]` for the latest value, `extract(epoch FROM interval)`, `::DOUBLE` before a division
of integers, `ON CONFLICT ... DO UPDATE`, and an alias on every subquery in FROM.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Protocol

from lectr.common.errors import LectrError

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_DB = "lectr.duckdb"


def default_db_path() -> str:
    """`LECTR_DB` from the environment (a DuckDB file's path or a postgresql:// URL), else
    `lectr.duckdb` in the working directory."""
    return os.environ.get("LECTR_DB") or DEFAULT_DB


def is_postgres(location: str) -> bool:
    return str(location).startswith(("postgresql://", "postgres://"))


class StorageError(LectrError, RuntimeError):
    """The database could not be used; the message says what to do."""


def utc_now() -> datetime:
    """UTC, without tzinfo: both databases store TIMESTAMP without a zone, always UTC."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def sql_list(values) -> str:
    """A parenthesised list of string constants for `IN`: only for values the code itself holds
    (task types, outcome names), never for input."""
    return "(" + ", ".join("'" + str(v).replace("'", "''") + "'" for v in values) + ")"


class Session(Protocol):
    """One open connection: reads, and for a write session one transaction, committed at its end."""

    dialect: str  # duckdb or postgresql: for the rare statement only one of them needs (an index)

    def rows(self, sql: str, params: dict | None = None) -> list[tuple]: ...
    def dicts(self, sql: str, params: dict | None = None) -> list[dict]: ...
    def frame(self, sql: str, params: dict | None = None) -> "pd.DataFrame": ...
    def execute(self, sql: str, params: dict | None = None) -> int:
        """Run a statement; the number of rows it inserted, updated or deleted."""

    def has_table(self, name: str) -> bool: ...
    def transaction(self) -> AbstractContextManager[None]:
        """A transaction (nested in a write session's own: a savepoint where the database has them)."""

    def append(self, table: str, rows: list[dict]) -> None:
        """Rows (dicts keyed by column) in one bulk load: the writer's batches."""


class Database(Protocol):
    @property
    def location(self) -> str: ...
    def read(self) -> AbstractContextManager[Session]:
        """A session for reading. Raises StorageError when the database cannot be opened."""

    def write(self) -> AbstractContextManager[Session]:
        """A session whose statements are one transaction, on a database migrated to this code's schema."""


def scalar(session: Session, sql: str, params: dict | None = None):
    """The first column of the first row."""
    return session.rows(sql, params)[0][0]


def latest(column: str, where: str) -> str:
    """The column's value in the newest row that meets `where`, NULL included (DuckDB's arg_max, which
    PostgreSQL lacks)."""
    return f"(array_agg({column} ORDER BY ts DESC) FILTER (WHERE {where}))[1]"


def counts_by(rows: list[tuple]) -> dict[tuple, dict[str, int]]:
    """(*key, value, count) rows as {key: {value: count}}: a histogram per group, which the two
    databases spell differently in SQL."""
    found: dict[tuple, dict[str, int]] = {}
    for *key, value, count in rows:
        found.setdefault(tuple(key), {})[value] = int(count)
    return found
