"""`Store`: every operation Lectr's processes need of the place its data is kept.

The proxy reads keys, the writer appends the request log, the jobs aggregate and keep their
findings, the CLI manages keys, the dashboard reads. They all go through a `Store` that
`lectr.store.open_store(location)` returns, never through SQL of their own: `DuckStore`, one
DuckDB file, or `PgStore`, a PostgreSQL database shared by several proxy hosts.

What only a DuckDB file has (a connection for raw SQL, collecting the workers' files) is in
lectr/store/duckdb_connection.py and duckdb_collect.py, outside this interface.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Iterator, Protocol, runtime_checkable

from lectr.common.keys import NewKey, StoredKey

if TYPE_CHECKING:
    import pandas as pd


@runtime_checkable
class Store(Protocol):
    @property
    def location(self) -> str:
        """Where the data is: a file path or a URL (with its password: to open it again)."""

    @property
    def display(self) -> str:
        """Where the data is, for a message: a URL without its password."""

    def schema_state(self) -> str:
        """missing, empty, old, newer or ok: whether this code can read the store as it is."""

    # --- org keys: the CLI writes them, the proxy reads them ---

    def insert_key(self, org_id: str, new_key: NewKey) -> None: ...
    def revoke_key(self, key_id: str) -> bool: ...
    def list_keys(self) -> list[tuple[str, str, datetime, datetime | None]]: ...
    def active_keys(self) -> list[StoredKey]:
        """The keys not revoked. Raises StorageError, and only that, when they cannot be read."""

    def has_keys(self) -> bool:
        """Whether any key was ever created. Raises StorageError, and only that, when it cannot tell."""

    def keys_version(self) -> object:
        """Cheap to poll (no query): when it changes, the proxy reloads `active_keys`."""

    # --- the rules and experiments, when kept in the store (lectr/store/documents.py) ---

    def document(self, name: str) -> tuple[str, int] | None: ...
    def save_document(self, name: str, body: str, edited: int | None) -> int: ...
    def document_version(self, name: str) -> object:
        """Cheap to poll (no query): when it changes, the proxy reloads the document."""

    # --- the writer ---

    def append_request_logs(
        self,
        rows: list[dict],
        dropped: dict[str, int] | None = None,
        shadow: list[dict] | None = None,
        batch_id: str | None = None,
    ) -> None: ...
    def shadow_usage(self, since: datetime) -> dict[str, tuple[int, float]]:
        """Per experiment: shadow requests sent since then, and their cost (the writer's caps start there)."""

    # --- shadow experiments' results: the recommendation engine and the dashboard ---

    def experiment_results(self, since: datetime, today: datetime, org: str | None = None) -> list[dict]: ...
    def shadow_spend(self, since: datetime, org: str | None = None) -> float: ...

    # --- the background jobs ---

    @contextmanager
    def job_turn(self, job: str, every: float | None) -> Iterator[bool]:
        """A context manager: whether this process runs `job` now (every `every` seconds; None: asked by
        hand). With several hosts on one store, one of them per interval."""

    def aggregate(self, now: datetime | None = None, full: bool = False) -> int: ...
    def hourly_metrics(self, now: datetime, days: int = 7) -> list[dict]: ...
    def open_anomalies(self) -> list[dict]: ...
    def save_anomalies(self, upserts: list[dict], resolved: list[str], now: datetime) -> None: ...
    def traffic_profiles(self, since: datetime) -> list[dict]: ...
    def replace_recommendations(self, rows: list[dict], now: datetime) -> None: ...

    # --- the dashboard's reads (org None: every org) ---

    def dashboard_orgs(self) -> list[str]: ...
    def worker_runs(self) -> dict[str, datetime]: ...
    def overview_series(self, org: str | None, since: datetime, period: str) -> "pd.DataFrame": ...
    def overview_breakdown(self, org: str | None, since: datetime, period: str) -> "pd.DataFrame": ...
    def latency_by_model(self, org: str | None, since: datetime) -> "pd.DataFrame": ...
    def dropped_since(self, since: datetime) -> int: ...
    def request_log(
        self, org: str | None, since: datetime, until: datetime | None = None,
        filters: dict[str, str] | None = None, limit: int = 50, offset: int = 0,
    ) -> tuple["pd.DataFrame", int]: ...  # fmt: skip
    def request_log_choices(self, org: str | None, since: datetime) -> dict[str, list[str]]: ...
    def request_detail(self, request_id: str) -> dict | None: ...
    def rule_match_counts(self, since: datetime) -> dict[str, int]: ...
    def rule_health(self, since: datetime, recent: datetime) -> "pd.DataFrame": ...
    def org_recommendations(self, org: str | None) -> "pd.DataFrame": ...
    def org_anomalies(self, org: str | None, limit: int = 200) -> "pd.DataFrame": ...
