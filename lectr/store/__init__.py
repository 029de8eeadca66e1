"""The only package that speaks SQL: schema migrations, keys, request logs, summaries,
the jobs' tables and the dashboard's reads.

Everything else asks a `Store` (lectr/store/interface.py) that `open_store` returns for a
location; the modules here are its DuckDB implementation, one concern each.
"""

from pathlib import Path

from lectr.store.connection import StorageError, default_db_path, utc_now
from lectr.store.duckdb_store import DuckStore
from lectr.store.interface import Store
from lectr.store.logs import STORED_DEGRADED

__all__ = ["STORED_DEGRADED", "DuckStore", "StorageError", "Store", "default_db_path", "open_store", "utc_now"]


def open_store(location: str | Path) -> Store:
    """The store at `location`: a DuckDB file's path, the only kind so far. Another kind (a
    `postgresql://` URL, say) is one more branch here, returning its own class."""
    if "://" in str(location):
        raise StorageError(f"cannot open {location}: Lectr keeps its data in a DuckDB file; give the file's path")
    return DuckStore(str(location))
