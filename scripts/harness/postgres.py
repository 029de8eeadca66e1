"""A real, temporary PostgreSQL server for the tests: its own cluster (initdb), on 127.0.0.1 and a
free port, with password authentication, as the proxy hosts will meet it. Fixtures are in
tests/conftest.py (`postgres_server`, `pg_url`).

Durability settings are left at their defaults (fsync, synchronous_commit on): the tests check
what survives a crash. initdb and postgres refuse to run as root; as root, the server runs as
Debian's `postgres` user, in a directory of its own under /tmp (pytest's are 0700 root's).
"""

from __future__ import annotations

import functools
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql as pgsql

from .processes import free_port

USER = "lectr"
INSTALL_HINT = "PostgreSQL's server is not installed: run `bash scripts/test.sh` or `apt-get install postgresql`."


def pg_bin() -> Path:
    """The directory of initdb and pg_ctl: PATH's, else the newest /usr/lib/postgresql/*/bin."""
    on_path = [shutil.which(name) for name in ("initdb", "pg_ctl")]
    if all(on_path):
        return Path(on_path[0]).resolve().parent  # the real directory, where postgres is too
    found = [d for d in Path("/usr/lib/postgresql").glob("*/bin") if (d / "initdb").exists()]
    if not found:
        raise RuntimeError(INSTALL_HINT)
    return max(found, key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else 0)


@functools.cache
def as_server_user() -> list[str]:
    """The prefix that runs a command as the server's user: `postgres` when we are root, else nothing."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise RuntimeError(f"Running as root, and there is no `postgres` user to run the server as. {INSTALL_HINT}")
    runuser = shutil.which("runuser", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")  # util-linux's
    if not runuser:
        raise RuntimeError("Running as root, and there is no `runuser` to run the server as `postgres`.")
    return [runuser, "-u", "postgres", "--"]


@dataclass
class Postgres:
    """One temporary cluster. `home` holds the data directory and the Unix socket; `log` is in the
    test's own directory (the server writes to a file descriptor it inherits, so the file needs no
    permissions for the `postgres` user)."""

    port: int
    home: Path
    log: Path
    password: str
    bindir: Path
    temporary_home: bool  # made under /tmp (as root): removed by destroy()

    @property
    def datadir(self) -> Path:
        return self.home / "data"

    @property
    def url(self) -> str:
        """The maintenance database's URL."""
        return self.url_for("postgres")

    def url_for(self, dbname: str) -> str:
        return f"postgresql://{USER}:{self.password}@127.0.0.1:{self.port}/{dbname}"

    def _run(self, *args: str, timeout: float = 60) -> int:
        with open(self.log, "a") as log:
            return subprocess.run(
                [*as_server_user(), str(self.bindir / args[0]), *args[1:]],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.home,  # the caller's may be closed to the `postgres` user
                timeout=timeout,
            ).returncode

    def _failed(self, what: str) -> RuntimeError:
        tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])
        return RuntimeError(f"PostgreSQL {what}; the end of {self.log}:\n{tail}")

    def start(self, timeout: float = 30) -> None:
        """Start the server and wait until it takes a password login (after a crash: after recovery)."""
        if self._run("pg_ctl", "start", "-D", str(self.datadir), "-w", "-t", str(int(timeout)), timeout=timeout + 10):
            raise self._failed("did not start")
        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg.connect(self.url, connect_timeout=2).close()
                return
            except psycopg.OperationalError as e:
                if time.monotonic() > deadline:
                    raise self._failed(f"takes no connection ({e})")
                time.sleep(0.05)

    def is_running(self) -> bool:
        return self.datadir.exists() and self._run("pg_ctl", "status", "-D", str(self.datadir), timeout=10) == 0

    def stop(self, mode: str = "fast", timeout: float = 30) -> None:
        """Stop the server: "fast" (a clean shutdown), or "immediate", which quits without a checkpoint,
        as a crashed server would (the OS's cache survives it: a server crash, not a power cut).
        A fast stop that does not finish in `timeout` is made immediate."""
        if not self.is_running():
            return
        args = ("pg_ctl", "stop", "-D", str(self.datadir), "-w", "-t", str(int(timeout)))
        try:
            stopped = self._run(*args, "-m", mode, timeout=timeout + 10) == 0
        except subprocess.TimeoutExpired:
            stopped = False
        if not stopped and self.is_running():
            self._run(*args, "-m", "immediate", timeout=timeout + 10)
        if self.is_running():
            raise self._failed("did not stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def destroy(self) -> None:
        """Stop the server and remove its directory when it was made under /tmp (the log stays).
        A server that does not stop keeps its directory: stop()'s error is raised, and the data of a
        running server is not deleted under it."""
        self.stop()
        if self.temporary_home:
            shutil.rmtree(self.home, ignore_errors=True)

    def create_database(self, name: str) -> str:
        """A new empty database; its URL."""
        self.sql(pgsql.SQL("CREATE DATABASE {}").format(pgsql.Identifier(name)))
        return self.url_for(name)

    def sql(self, statement: str | pgsql.Composable, dbname: str = "postgres") -> list[tuple]:
        """Run one statement (autocommit); its rows, or [] when it returns none."""
        with psycopg.connect(self.url_for(dbname), autocommit=True) as conn:
            cur = conn.execute(statement)
            return cur.fetchall() if cur.description else []


def start_postgres(workdir: Path) -> Postgres:
    """initdb a new cluster and start it; the log is workdir/postgres.log. The caller stops it
    (destroy(), which also removes a directory made under /tmp)."""
    workdir.mkdir(parents=True, exist_ok=True)
    bindir, prefix = pg_bin(), as_server_user()
    if prefix:  # the `postgres` user cannot reach pytest's directories (0700, root's)
        home = Path(tempfile.mkdtemp(prefix="lectr-pg-", dir="/tmp"))
        shutil.chown(home, "postgres", "postgres")
    else:
        home = workdir / "postgres"
        home.mkdir(parents=True)
    pg = Postgres(free_port(), home, workdir / "postgres.log", secrets.token_hex(16), bindir, bool(prefix))
    try:
        pwfile = home / "pwfile"
        pwfile.write_text(pg.password + "\n")
        if prefix:
            shutil.chown(pwfile, "postgres", "postgres")
        initdb = ("initdb", "-D", str(pg.datadir), "-U", USER, f"--pwfile={pwfile}", "--auth=scram-sha-256")
        code = pg._run(*initdb, "-E", "UTF8", "--no-locale")
        pwfile.unlink()
        if code:
            raise pg._failed("initdb failed")
        with open(pg.datadir / "postgresql.conf", "a") as conf:
            conf.write(
                "\n# scripts/harness/postgres.py: loopback only, its own socket directory; durability as default\n"
                f"listen_addresses = '127.0.0.1'\nport = {pg.port}\nunix_socket_directories = '{home}'\n"
                "max_connections = 100\nshared_buffers = 16MB\n"
            )
        pg.start()
    except BaseException:
        pg.destroy()
        raise
    return pg
