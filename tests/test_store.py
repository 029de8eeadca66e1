"""The store's seam: `Store` lists what Lectr needs of its data, `DuckStore` is its one implementation."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

import lectr
from lectr.store import DuckStore, StorageError, Store, collect, open_store, utc_now
from lectr.store.duckdb_connection import connect
from lectr.store.pg_store import PgStore


def test_the_duckdb_store_has_every_operation_of_the_interface_as_declared(tmp_path):
    store = open_store(tmp_path / "lectr.duckdb")
    assert isinstance(store, DuckStore) and isinstance(store, Store)
    assert store.location == str(tmp_path / "lectr.duckdb")
    operations = {name: f for name, f in vars(Store).items() if inspect.isfunction(f) and not name.startswith("_")}
    assert len(operations) > 20
    for kind in (DuckStore, PgStore):
        for name, declared in operations.items():
            assert inspect.signature(getattr(kind, name)) == inspect.signature(declared), (kind, name)
    assert isinstance(open_store("postgresql://lectr@127.0.0.1:1/lectr"), PgStore)  # opens nothing yet


def test_a_url_of_another_database_is_refused_with_what_is_accepted():
    with pytest.raises(StorageError, match="give its path.*postgresql://user:password@host"):
        open_store("mysql://lectr@db.internal/lectr")


def test_every_table_comes_from_a_migration(tmp_path):
    # collect.py's bookkeeping included: a collection run adds no table the migrations did not make.
    main, worker = tmp_path / "lectr.duckdb", tmp_path / "worker-1.duckdb"
    open_store(main).append_request_logs([])
    open_store(worker).append_request_logs([{"request_id": "r1", "ts": utc_now(), "mode": "base_url"}])

    def tables() -> set[str]:
        with connect(main, read_only=True) as con:
            return {row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}

    migrated = tables()
    assert collect.collect(main, [worker]) == 1
    assert tables() == migrated and "collected_from" in migrated
    # and nothing in lectr/ but the schema's history and the migrations has a CREATE TABLE in it
    package = Path(lectr.__file__).parent
    creating = [str(p.relative_to(package)) for p in package.rglob("*.py") if "CREATE TABLE" in p.read_text()]
    assert sorted(creating) == ["store/migrations.py", "store/schema.py"]
