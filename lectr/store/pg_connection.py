"""A PostgreSQL server as a `Database` (lectr/store/database.py): pooled connections, and the shared SQL
translated for it.

psycopg 3 with psycopg_pool: a small pool per process and server, opened on first use. While the
server is down or unreachable, a session waits at most `CONNECT_TIMEOUT` seconds and raises
StorageError; the pool tries again in the background for a minute, and after that at the next
session (the writer's, the listener's and the pollers' own backoff), so Lectr carries on without a
restart once the server is back. The first session of a process migrates the schema,
under an advisory lock, so hosts starting together migrate it once.

The translation: `$name` parameters become psycopg's `%(name)s` (a literal % doubled), and DuckDB's
DOUBLE becomes DOUBLE PRECISION. NUMERIC (what PostgreSQL's sum and avg of integers give) is read as
a float, as DuckDB gives it.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import re
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.numeric import FloatLoader
from psycopg_pool import ConnectionPool, PoolTimeout

from lectr.store.database import StorageError

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0  # seconds a session waits for a connection before giving up

# How a connection notices a server that went away without closing it (a failover, a host lost):
# TCP keepalives and a send timeout, on our side (libpq) and on the server's (per session, below),
# within about 30 s instead of the operating system's two hours. A listener would otherwise hear
# nothing for hours, and a dead host's job lock would be held as long.
CONNECTION = {
    "autocommit": True,
    "connect_timeout": int(CONNECT_TIMEOUT),
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 30_000,  # milliseconds unacknowledged data may wait
}
MIGRATION_LOCK = 0x4C454354  # "LECT": the advisory lock the first session of each process migrates under


def redacted(url: str) -> str:
    """The URL as a message may show it: parsed as libpq parses it, without the password (in the
    user part or in the query), whatever characters it holds."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "postgresql://(a URL that cannot be read)"
    hidden = ":***" if parts.pop("password", None) is not None else ""  # there is one, and it is not shown
    if parts.pop("sslpassword", None) is not None:  # a client key's passphrase: no more shown
        parts["sslpassword"] = "***"
    where = parts.pop("host", "") + (f":{parts.pop('port')}" if "port" in parts else "")
    user = f"{parts.pop('user', '')}{hidden}@" if "user" in parts or hidden else ""
    query = "&".join(f"{k}={v}" for k, v in parts.items() if k != "dbname")
    return f"postgresql://{user}{where}/{parts.get('dbname', '')}" + (f"?{query}" if query else "")


def checked(url: str) -> str:
    """The URL, once libpq can read it: a StorageError that does not repeat it (it holds a password) otherwise."""
    try:
        conninfo_to_dict(url)
    except psycopg.ProgrammingError as e:
        reason = "a bad percent-escape" if "percent" in str(e) else "not a connection URL"
        raise StorageError(
            f"the PostgreSQL URL cannot be read ({reason}): percent-encode the password's special characters "
            "(% as %25, @ as %40), or leave the password out of the URL and set PGPASSWORD"
        ) from None
    return url


@functools.lru_cache(maxsize=512)
def translate(sql: str) -> str:
    sql = sql.replace("%", "%%")
    sql = re.sub(r"\$([A-Za-z_][A-Za-z0-9_]*)", r"%(\1)s", sql)
    return re.sub(r"\bDOUBLE\b(?!\s+PRECISION)", "DOUBLE PRECISION", sql)


class PgSession:
    """A `Session` on a pooled connection (autocommit; `transaction` for what must be one)."""

    dialect = "postgresql"

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn

    def _run(self, sql: str, params: dict | None) -> psycopg.Cursor:
        return self.conn.execute(translate(sql), params or {})

    def rows(self, sql: str, params: dict | None = None) -> list[tuple]:
        cursor = self._run(sql, params)
        return cursor.fetchall() if cursor.description else []

    def dicts(self, sql: str, params: dict | None = None) -> list[dict]:
        cursor = self._run(sql, params)
        names = [d.name for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]

    def frame(self, sql: str, params: dict | None = None) -> "pd.DataFrame":
        import pandas as pd

        cursor = self._run(sql, params)
        return pd.DataFrame.from_records(cursor.fetchall(), columns=[d.name for d in cursor.description])

    def execute(self, sql: str, params: dict | None = None) -> int:
        return max(self._run(sql, params).rowcount, 0)

    def has_table(self, name: str) -> bool:
        sql = "SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = %s"
        return bool(self.conn.execute(sql, [name]).fetchall())

    def transaction(self):
        return self.conn.transaction()

    def append(self, table: str, rows: list[dict]) -> None:
        """Rows (dicts keyed by column) in one COPY: PostgreSQL's bulk load, far faster than INSERTs."""
        if not rows:
            return
        names = list(rows[0])
        with self.conn.cursor() as cursor:
            with cursor.copy(f"COPY {table} ({', '.join(names)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row([_text(row[n]) for n in names])


def _text(value):
    """A value PostgreSQL's text can hold: it refuses NUL, which a client can put in a model name, and
    one such row would keep the writer's whole batch out for good. DuckDB stores it as it is."""
    if isinstance(value, str) and "\x00" in value:
        return value.replace("\x00", "\ufffd")
    return value


def _configure(conn: psycopg.Connection) -> None:
    conn.adapters.register_loader("numeric", FloatLoader)
    # The dashboard's exact percentiles sort a period's latencies: in memory, not in temporary files
    # (the server's default is 4 MB). Per connection, only while a query needs it.
    conn.execute("SET work_mem = '64MB'")
    # The server's side of the keepalives above: a host that dies holding a job's lock loses it in ~30 s.
    conn.execute("SET tcp_keepalives_idle = 10")
    conn.execute("SET tcp_keepalives_interval = 5")
    conn.execute("SET tcp_keepalives_count = 3")
    # JIT compiling pays off for queries of minutes; the dashboard's take a fraction of a second, and
    # compiling them cost more than it saved (measured: scripts/bench_dashboard.py --postgres).
    conn.execute("SET jit = off")


_pools: dict[tuple[int, str], ConnectionPool] = {}
_migrated: set[tuple[int, str]] = set()
_lock = threading.Lock()


def pool(url: str) -> ConnectionPool:
    """This process's pool for the server at `url` (a child process makes its own)."""
    key = (os.getpid(), url)
    with _lock:
        if key not in _pools:
            _pools[key] = ConnectionPool(
                url,
                min_size=1,
                max_size=4,
                kwargs=CONNECTION,
                configure=_configure,
                check=ConnectionPool.check_connection,  # one left broken by a server restart is replaced, not used
                timeout=CONNECT_TIMEOUT,
                # The pool's own attempts in the background, 1, 2, 4 ... s apart, for a minute; after
                # that each session asks for a connection again (the writer's, the listener's and the
                # pollers' own backoff), so Lectr reconnects without a restart however long it was down.
                reconnect_timeout=60,
                name=f"lectr {redacted(url)}",
                open=True,
            )
        return _pools[key]


def _hint(e: Exception) -> str:
    """What went wrong, and for the usual causes what to do."""
    if isinstance(e, psycopg.errors.InsufficientPrivilege):
        return f"{e} (Lectr creates its tables on first use: GRANT CREATE ON SCHEMA public TO its user)"
    if isinstance(e, psycopg.errors.ReadOnlySqlTransaction):
        return f"{e} (is this a standby? point LECTR_DB at the primary)"
    return str(e)


def close(url: str) -> None:
    """Close this process's pool for `url` (a test's database, before it is dropped)."""
    with _lock:
        found = _pools.pop((os.getpid(), url), None)
        _migrated.discard((os.getpid(), url))
    if found is not None:
        found.close(timeout=1)


@atexit.register
def _close_pools() -> None:
    """Without this, a pool whose server is gone holds the interpreter's exit for seconds per thread."""
    for (pid, _), p in list(_pools.items()):
        if pid == os.getpid():  # a forked child's copy of its parent's pools is not its own to close
            p.close(timeout=0.5)


@dataclass(frozen=True, repr=False)  # the repr would show the URL, password and all
class PgDatabase:
    """The PostgreSQL database at `url` as a `Database`."""

    url: str

    def __repr__(self) -> str:
        return f"PgDatabase({redacted(self.url)!r})"

    @property
    def location(self) -> str:
        return self.url

    @contextmanager
    def read(self) -> Iterator[PgSession]:
        with self._connection() as conn:
            yield PgSession(conn)

    @contextmanager
    def write(self) -> Iterator[PgSession]:
        with self._connection() as conn:
            session = PgSession(conn)
            with conn.transaction():
                yield session

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        try:
            with pool(self.url).connection() as conn:
                self._migrate_once(conn)
                yield conn
        except (psycopg.Error, PoolTimeout) as e:  # down, refused, no privilege, a standby: said, not a traceback
            raise StorageError(f"cannot use PostgreSQL at {redacted(self.url)}: {_hint(e)}") from e

    def _migrate_once(self, conn: psycopg.Connection) -> None:
        from lectr.store.migrations import migrate  # written on a Session, for both databases

        key = (os.getpid(), self.url)
        if key in _migrated:
            return
        with conn.transaction():  # one host at a time; the others then find nothing left to do
            conn.execute("SELECT pg_advisory_xact_lock(%s)", [MIGRATION_LOCK])
            applied = migrate(PgSession(conn))
        if applied:
            log.info("migrated %s: %s", redacted(self.url), ", ".join(applied))
        _migrated.add(key)
