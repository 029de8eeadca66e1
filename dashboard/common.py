"""What every dashboard page shares: the sidebar's choices, cached reads, and messages.

Reads go through `storage` (the one module that writes SQL), each opening the database
read-only for one query, so the proxy's writer never waits more than a moment. Results
(data frames, never connections) are cached for a few seconds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta

import streamlit as st

from lectr import priceupdate, storage

REFRESH_SECONDS = 15  # live pages re-read the database this often
CACHE_SECONDS = 5
STALE_AFTER = timedelta(minutes=3)  # the proxy's writer notes a heartbeat every minute
PRICES_FILE = "prices.yaml"  # the proxy's lectr_prices_file default, in the same working directory

# label -> (length, summary bucket)
PERIODS = {
    "Last 24 hours": (timedelta(hours=24), "hour"),
    "Last 7 days": (timedelta(days=7), "hour"),
    "Last 30 days": (timedelta(days=30), "day"),
    "Last 90 days": (timedelta(days=90), "day"),
}


@dataclass(frozen=True)
class Context:
    db: str
    rules: str
    db_state: str  # storage.schema_state as the app found it this run: ok, missing, empty, old, newer, busy
    org: str | None
    period: str  # a PERIODS label
    now: datetime  # UTC, to the minute

    @property
    def bucket(self) -> str:
        return PERIODS[self.period][1]

    @property
    def since(self) -> datetime:
        start = self.now - PERIODS[self.period][0]
        return start.replace(minute=0) if self.bucket == "hour" else start.replace(hour=0, minute=0)


def default_db() -> str:
    return storage.default_db_path()


def default_rules() -> str:
    return os.environ.get("LECTR_RULES") or "rules.yaml"


def context() -> Context:
    state = st.session_state
    now = storage.utc_now().replace(second=0, microsecond=0)
    return Context(
        state.get("db", default_db()),
        state.get("rules", default_rules()),
        state.get("db_state", "missing"),
        state.get("org"),
        state.get("period", next(iter(PERIODS))),
        now,
    )


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def cached(name: str, *args):
    """storage.<name>(*args), cached briefly; raises storage.StorageError."""
    return getattr(storage, name)(*args)


def read(name: str, *args):
    """storage.<name>(*args), cached briefly. A database locked for too long shows a notice instead."""
    try:
        return cached(name, *args)
    except storage.StorageError as e:
        st.warning(f"The database is busy or unreadable right now; this page retries on its own. ({e})")
        st.stop()


@st.cache_resource
def _price_files(db: str) -> priceupdate.PriceFiles:
    return priceupdate.PriceFiles(db, "", PRICES_FILE, "", 0)  # reading them hands them to pricing


def use_prices(db: str) -> None:
    """Know the prices the proxy knows (its fetched data next to the database, and the user's price
    file), so that only a model no price source knows gets the Rules page's unknown-model warning.
    Reloaded when a file changes, as the writer reloads them; a bad file keeps the last good one."""
    _price_files(db).poll()


def clear_cache() -> None:
    cached.clear()


def flash(messages: list[tuple[str, str]]) -> None:
    """Rerun the page and show these (kind, text) messages at its top: st.success, st.warning, ..."""
    st.session_state.flash = messages
    st.rerun()


def show_flash() -> None:
    for kind, text in st.session_state.pop("flash", []):
        getattr(st, kind)(text)


def require_org(ctx: Context) -> str:
    if not ctx.org:
        st.info(
            "No org yet. Create one with `.venv/bin/lectr keys create ORG`, or load demo traffic with "
            "`.venv/bin/python scripts/demo.py`."
        )
        st.stop()
    return ctx.org


def ago(ts: datetime | None) -> str:
    if ts is None:
        return "never"
    seconds = max(0, int((storage.utc_now() - ts).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def usd(value: float | None) -> str:
    if value is None:
        return "–"
    return f"${value:,.2f}" if abs(value) >= 1 else f"${value:,.4f}"
