"""What every dashboard page shares: the sidebar's choices, cached reads, and messages.

Reads are the store's methods (`read(ctx.store.overview_series, ...)`), each opening the database
read-only for one query, so the proxy's writer never waits more than a moment. Results (data
frames, never connections) are cached for a few seconds.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Callable, ParamSpec, TypeVar

import streamlit as st

from lectr.admin import yamlfile
from lectr.common.experiments import experiments_path
from lectr.prices import priceupdate
from lectr.store import StorageError, Store, default_db_path, is_postgres, open_store, utc_now

REFRESH_SECONDS = 15  # live pages re-read the database this often
CACHE_SECONDS = 5
STALE_AFTER = timedelta(minutes=3)  # the proxy's writer notes a heartbeat every minute
PRICES_FILE = "prices.yaml"  # the proxy's lectr_prices_file default, in the same working directory

P = ParamSpec("P")
T = TypeVar("T")

ALL_ORGS = "All orgs"  # the first choice of org: every org, and the requests that have none
NO_ORG = "(no org)"  # a request without one: refused for want of a valid key, or ended before the check
UNTAGGED = "(untagged)"  # no X-Lectr-Feature, or no X-Lectr-Task: shown alike

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
    rules: str  # the rules file, or db (lectr.common.rules.IN_DB): the rules document in the database
    experiments: str  # the shadow experiments file, or db
    db_state: str  # Store.schema_state as the app found it this run: ok, missing, empty, old, newer, busy
    org: str | None  # None: all orgs, unauthenticated traffic included
    period: str  # a PERIODS label
    now: datetime  # UTC, to the minute

    @property
    def store(self) -> Store:
        return open_store(self.db)

    @property
    def rules_source(self) -> yamlfile.Source:
        """Where the Rules page reads and saves the rules: the file, or the store's document."""
        return yamlfile.source(self.rules, self.db, "rules")

    @property
    def experiments_source(self) -> yamlfile.Source:
        return yamlfile.source(self.experiments, self.db, "experiments")

    @property
    def scope(self) -> str:
        """What the page shows, for its title."""
        return self.org or "all orgs"

    @property
    def bucket(self) -> str:
        return PERIODS[self.period][1]

    @property
    def span(self) -> timedelta:
        return PERIODS[self.period][0]

    @property
    def since(self) -> datetime:
        """The window's start, at a whole bucket, so that every page counts the same requests."""
        return self.bucket_of(self.now - self.span)

    @property
    def current_bucket(self) -> datetime:
        """The start of the bucket under way."""
        return self.bucket_of(self.now)

    def bucket_of(self, ts: datetime) -> datetime:
        """The start of the bucket `ts` falls in (`now` has no seconds already)."""
        return ts.replace(minute=0) if self.bucket == "hour" else ts.replace(hour=0, minute=0)

    @property
    def short(self) -> str:
        """The window's length in a column heading: 24 h, 7 d, ..."""
        return "24 h" if self.span.days <= 1 else f"{self.span.days} d"

    @property
    def window(self) -> str:
        """The window in words, for a page's caption."""
        return f"{self.period.lower()}: since {self.since:%b %d %H:%M} UTC"


def holds_password(location: str) -> bool:
    """A postgresql:// URL with a password in it (the sidebar masks it)."""
    try:
        return is_postgres(location) and ":***@" in open_store(location).display
    except StorageError:
        return is_postgres(location)  # unreadable: mask it all the same


def default_db() -> str:
    return default_db_path()


def default_rules() -> str:
    return os.environ.get("LECTR_RULES") or "rules.yaml"


def default_experiments(rules: str) -> str:
    """LECTR_EXPERIMENTS, else experiments.yaml beside the rules file (db with the rules in the database):
    where the proxy looks too."""
    return experiments_path(rules, os.environ.get("LECTR_EXPERIMENTS", ""))


def context() -> Context:
    state = st.session_state
    now = utc_now().replace(second=0, microsecond=0)
    rules = state.get("rules", default_rules())
    return Context(
        db=state.get("db", default_db()),
        rules=rules,
        experiments=state.get("experiments") or default_experiments(rules),
        db_state=state.get("db_state", "missing"),
        org=None if state.get("org", ALL_ORGS) == ALL_ORGS else state["org"],
        period=state.get("period", next(iter(PERIODS))),
        now=now,
    )


def read(query: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`query(*args)`, one of the store's reads (`ctx.store.overview_series`, ...), cached briefly. A database
    locked for too long shows a notice instead."""
    try:
        return cached(query, *args, **kwargs)
    except StorageError as e:
        st.warning(f"The database is busy or unreadable right now; this page retries on its own. ({e})")
        st.stop()


def cached(query: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`query(*args)`, a read of a store, cached briefly; raises StorageError."""
    return _cached(query.__self__, query.__name__, *args, **kwargs)


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def _cached(store, name: str, *args, **kwargs):
    """Cached by the store (a value: its file), the read's name and its arguments."""
    return getattr(store, name)(*args, **kwargs)


@st.cache_resource
def _price_files(db: str) -> priceupdate.PriceFiles:
    return priceupdate.PriceFiles(db, "", PRICES_FILE, "", 0)  # reading them hands them to pricing


def use_prices(db: str) -> None:
    """Know the prices the proxy knows (its fetched data next to the database, and the user's price
    file), so that only a model no price source knows gets the Rules page's unknown-model warning.
    Reloaded when a file changes, as the writer reloads them; a bad file keeps the last good one."""
    _price_files(db).poll()


def clear_cache() -> None:
    _cached.clear()


D = TypeVar("D")


def as_shown(source: yamlfile.Source, doc: D) -> D:
    """`doc` (a RulesDoc or an ExperimentsDoc just read) with the version this session last drew of
    `source`, to save with: a change made on the page is refused if someone else saved since the page
    was drawn, not only since this run read it (each click reruns the page, which reads afresh)."""
    drawn = st.session_state.setdefault("versions_drawn", {})
    version = drawn.get(str(source), doc.version)
    drawn[str(source)] = doc.version
    return replace(doc, version=version)


def flash(messages: list[tuple[str, str]]) -> None:
    """Rerun the page and show these (kind, text) messages at its top: st.success, st.warning, ..."""
    st.session_state.flash = messages
    st.rerun()


def show_flash() -> None:
    for kind, text in st.session_state.pop("flash", []):
        getattr(st, kind)(text)


# How wide each character is in the data grid's font (400 14px "Source Sans", which Streamlit ships),
# in pixels, as Chromium's canvas measures it: a column sized from these shows its longest value whole,
# where Streamlit's own sizing looks at a few rows only, and a guess per character wastes a column's width.
GLYPH_PX = {
    2.8: " ", 3.4: "|", 3.5: "',.:;ij·", 3.6: "l", 3.7: "I", 4.1: "!f", 4.3: "()[]{}", 4.4: "-", 4.8: "t",
    4.9: "/\\r", 5.9: "*s", 6.0: '"?z', 6.3: "x", 6.4: "c", 6.6: "vy", 6.7: "Y", 6.8: "J–", 6.9: "L",
    7.0: "0123456789#$+<=>F^_ek~", 7.1: "ag", 7.2: "X", 7.3: "V", 7.4: "E", 7.5: "S", 7.6: "TZ`o", 7.7: "Ahnu",
    7.8: "bdpq", 8.0: "CPR", 8.2: "K", 8.3: "B", 8.6: "&", 8.7: "DG→", 9.1: "NU", 9.2: "H", 9.3: "OQ", 10.1: "w",
    10.2: "M", 11.1: "W", 11.6: "%", 11.7: "m", 11.9: "@",
}  # fmt: skip
_GLYPH = {ch: px for px, chars in GLYPH_PX.items() for ch in chars}
OTHER_GLYPH_PX = 12.0  # anything else (⇄, ⊘, accents, CJK): wide enough for most
CELL_PADDING_PX = 8 + 8 + 2  # the grid's padding either side, and a pixel of border and rounding each


def text_px(text: str) -> float:
    return sum(_GLYPH.get(ch, OTHER_GLYPH_PX) for ch in text)


def fit(values, header: str = "") -> int:
    """A table column's width in pixels that shows its longest value (or its header) whole."""
    return math.ceil(max([text_px(header), *(text_px(str(v)) for v in values)]) + CELL_PADDING_PX)


def quiet_hosts(runs: dict, now: datetime) -> list[tuple[str, datetime]]:
    """Hosts whose writer's heartbeat ('writer <host>' in worker_runs) is stale, and when it last beat; a
    host quiet for more than a day is taken as gone for good, not warned about for ever."""
    return sorted(
        (worker.removeprefix("writer "), last)
        for worker, last in runs.items()
        if worker.startswith("writer ") and STALE_AFTER < now - last < timedelta(days=1)
    )


def ago(ts: datetime | None) -> str:
    if ts is None:
        return "never"
    seconds = max(0, int((utc_now() - ts).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def usd(value: float | None) -> str:
    """Dollars to the cent from $1; below, two significant digits ($0.56, $0.0067, $0.000042): a cheap
    request must not read $0.0000, nor a monthly saving $0.5600."""
    if value is None or value != value:
        return "–"
    if value == 0 or abs(value) >= 1:
        return f"${value:,.2f}"
    places = min(12, max(2, 1 - math.floor(math.log10(abs(value)))))  # two significant digits, cents at least
    whole, cents = f"{value:.{places}f}".split(".")
    return f"${whole}.{cents.rstrip('0').ljust(2, '0')}"  # $0.0007, not $0.00070; $0.10, not $0.1
