"""The PostgreSQL harness itself (scripts/harness/postgres.py): what the store's tests rely on."""

from __future__ import annotations

import socket
import uuid

import psycopg
import pytest

from helpers import Postgres, start_postgres

pytestmark = pytest.mark.slow  # starts PostgreSQL


def test_a_fresh_database_is_empty_and_writable(postgres_server, pg_url):
    with psycopg.connect(pg_url) as conn:
        tables = conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
        assert tables.fetchall() == []
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, note text)")
        conn.execute("INSERT INTO t VALUES (1, 'one')")
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT id, note FROM t").fetchall() == [(1, "one")]
    # and each test's database is its own
    name = f"harness_{uuid.uuid4().hex[:16]}"
    other = postgres_server.create_database(name)
    try:
        assert postgres_server.sql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'", name) == [(0,)]
        assert other.endswith(f"/{name}") and other.startswith("postgresql://lectr:")
    finally:
        postgres_server.sql(f'DROP DATABASE "{name}"')


def test_committed_rows_survive_a_crash(tmp_path):
    pg = start_postgres(tmp_path)
    try:
        url = pg.create_database("crash")
        with psycopg.connect(url) as conn:
            conn.execute("CREATE TABLE t (id int)")
            conn.execute("INSERT INTO t SELECT generate_series(1, 1000)")
        # committed, and a transaction in flight when the server dies
        open_tx = psycopg.connect(url)
        open_tx.execute("INSERT INTO t VALUES (-1)")
        pg.stop("immediate")
        assert not pg.is_running()
        open_tx.close()
        pg.start()
        assert pg.sql("SELECT count(*), min(id) FROM t", "crash") == [(1000, 1)]
        assert "not properly shut down; automatic recovery in progress" in pg.log.read_text()
        pg.restart()
        assert pg.is_running() and pg.sql("SELECT count(*) FROM t", "crash") == [(1000,)]
    finally:
        pg.destroy()
    assert not (pg.datadir / "postmaster.pid").exists()  # stopped (as root: its directory removed too)


def test_a_server_that_does_not_stop_keeps_its_directory(tmp_path, monkeypatch):
    home = tmp_path / "home"
    pg = Postgres(0, home, tmp_path / "postgres.log", "secret", tmp_path, temporary_home=True)
    pg.datadir.mkdir(parents=True)

    def refuses(*args, **kwargs):
        raise RuntimeError("PostgreSQL did not stop")

    monkeypatch.setattr(pg, "stop", refuses)
    with pytest.raises(RuntimeError, match="did not stop"):
        pg.destroy()
    assert pg.datadir.exists()  # a running server's data is not deleted under it


def test_the_server_listens_on_127_0_0_1_only(postgres_server):
    assert postgres_server.sql("SHOW listen_addresses") == [("127.0.0.1",)]
    sockets = postgres_server.sql("SHOW unix_socket_directories")[0][0]
    assert sockets == str(postgres_server.home) and "/var/run/postgresql" not in sockets
    for family, address in [(socket.AF_INET, "127.0.0.2"), (socket.AF_INET6, "::1")]:
        with socket.socket(family) as s:
            s.settimeout(2)
            try:
                s.connect((address, postgres_server.port))
            except OSError:
                continue  # refused (or no IPv6): nothing listens there
            pytest.fail(f"PostgreSQL answers on {address}")
    # and only with the password
    wrong = postgres_server.url.replace(postgres_server.password, "wrong")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong)
