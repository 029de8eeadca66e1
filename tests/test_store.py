"""The store's seam: `Store` lists what Lectr needs of its data, `DuckStore` is its one implementation."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from lectr.store import DuckStore, StorageError, Store, migrations, open_store
from lectr.store.connection import connect
from lectr.store.migrations import MIGRATIONS


def test_the_duckdb_store_has_every_operation_of_the_interface_as_declared(tmp_path):
    store = open_store(tmp_path / "lectr.duckdb")
    assert isinstance(store, DuckStore) and isinstance(store, Store)
    assert store.location == str(tmp_path / "lectr.duckdb")
    operations = {name: f for name, f in vars(Store).items() if inspect.isfunction(f) and not name.startswith("_")}
    assert len(operations) > 20
    for name, declared in operations.items():
        assert inspect.signature(getattr(DuckStore, name)) == inspect.signature(declared), name


def test_a_url_is_refused_until_a_store_of_its_kind_exists():
    with pytest.raises(StorageError, match="give the file's path"):
        open_store("postgresql://lectr@db.internal/lectr")


def test_every_table_comes_from_a_migration(tmp_path):
    # collect.py's bookkeeping included: no module creates a table of its own.
    store = open_store(tmp_path / "lectr.duckdb")
    store.append_request_logs([])
    assert MIGRATIONS[-1].__name__ == "m009_collected_from"
    with connect(store.location, read_only=True) as con:
        tables = {row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert "collected_from" in tables
    # and no module but the migrations has a CREATE TABLE in it
    creating = [p.name for p in Path(migrations.__file__).parent.glob("*.py") if "CREATE TABLE" in p.read_text()]
    assert creating == ["migrations.py"]
