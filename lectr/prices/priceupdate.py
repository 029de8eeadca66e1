"""Keeping prices current: fetching genai-prices' newer data, on demand or on a schedule,
and the writer's reload of it and of the user's price file.

The one place pricing touches the network. The data is fetched from the URL genai-prices'
own updater uses (or another: a mirror, a file of one's own), validated with the parser
that updater uses, and saved next to the database (`<db>.prices.json`; for a PostgreSQL
store, `lectr.prices.json` in the working directory), replacing the last file in one rename.
The writer process watches that file and prices with it from its next batch, so a hand-run
update and a scheduled one reach it the same way.

Why not `genai_prices.UpdatePrices` itself: it keeps the fetched data in the memory of
the process that fetched it (a hand-run update would never reach the writer), sets it
process-wide without telling which prices came from it, and fetches again at every start.

Any failure leaves the file as it was: the writer keeps the last good data, or the bundled.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import NamedTuple

import httpx

from lectr.common.errors import LectrError
from lectr.common.watch import WatchedFile
from lectr.prices import pricing
from lectr.prices.pricefile import PriceList, load_price_file
from lectr.prices.sources import PRICES_URL

log = logging.getLogger(__name__)

# The largest data file taken: today's is under 2 MB.
MAX_BYTES = 64 * 2**20
# The time limits genai-prices' own updater uses (UpdatePrices.request_timeout).
TIMEOUT = httpx.Timeout(10, connect=5)
# How often the writer checks the price files for changes (one stat each).
RELOAD_SECONDS = 1.0
# After a failed scheduled fetch (no internet yet, a server down), try again this much sooner.
RETRY_SECONDS = 3600.0


class PriceUpdateError(LectrError, RuntimeError):
    """Newer prices could not be fetched or saved; the message says why."""


class Fetched(NamedTuple):
    path: str
    providers: int
    models: int


# Where a host keeps fetched price data when its store is PostgreSQL (no file to put it beside):
# the working directory, where `lectr.duckdb` would be. The data is genai-prices', the same for
# every database, and each host's writer prices with its own copy.
PG_DATA_FILE = "lectr.prices.json"


def data_path(db: str | Path) -> str:
    """Where fetched price data is kept for the store `db`: beside a DuckDB file (`<db>.prices.json`);
    for a PostgreSQL URL, `lectr.prices.json` in the working directory (an absolute path)."""
    if "://" in str(db):  # a URL, not a file (lectr.store takes no URL but PostgreSQL's)
        return os.path.abspath(PG_DATA_FILE)
    return f"{db}.prices.json"


def download(url: str = PRICES_URL, path: str | Path = "lectr.duckdb.prices.json") -> Fetched:
    """Fetch genai-prices' data from `url`, check it, and save it to `path` atomically."""
    try:
        with httpx.stream("GET", url, timeout=TIMEOUT, follow_redirects=True) as response:
            response.raise_for_status()
            raw = bytearray()
            for chunk in response.iter_bytes():
                raw += chunk
                if len(raw) > MAX_BYTES:
                    raise PriceUpdateError(f"{url} sent more than {MAX_BYTES // 2**20} MB: not price data")
    except httpx.HTTPStatusError as e:
        answer = f"{e.response.status_code} {e.response.reason_phrase}"
        raise PriceUpdateError(f"could not fetch {url}: the server answered {answer}; check the address") from e
    except (httpx.HTTPError, httpx.InvalidURL) as e:
        raise PriceUpdateError(f"could not fetch {url} ({e}); no internet? The prices in use stay as they are") from e
    try:
        snapshot = pricing.parse_data(bytes(raw))
    except ValueError as e:
        raise PriceUpdateError(f"{url} did not send price data: {e}") from e
    _write_atomically(Path(path), bytes(raw))
    return Fetched(str(path), len(snapshot.providers), sum(len(p.models) for p in snapshot.providers))


def _write_atomically(path: Path, data: bytes) -> None:
    # One rename: the writer reads the old file or the new one, never half of each.
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise PriceUpdateError(f"cannot write next to {path}: {e}") from e
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise PriceUpdateError(f"cannot write {path}: {e}") from e


class Refresher:
    """Fetches price data every `hours` in a thread of its own, for the writer to pick up.

    The first fetch waits until the saved file is `hours` old, so restarts do not fetch
    again. A failure (no internet) is logged once and tried again within the hour; the
    prices in use stay as they are.
    """

    def __init__(self, url: str, path: str, hours: float) -> None:
        self.url, self.path, self.every = url, path, hours * 3600
        self.fetched = 0  # successful fetches, for tests and logs
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lectr-prices", daemon=True)
        self._last_error: str | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()  # a fetch under way ends by itself, within its timeout; the thread is a daemon

    def _run(self) -> None:
        while not self._stop.wait(self._wait()):
            try:
                done = download(self.url, self.path)
            except Exception as e:  # no internet, a server down, a full disk: the prices in use stay
                if str(e) != self._last_error:
                    log.info("prices not refreshed: %s; trying again within the hour", e)
                self._last_error = str(e)
                self._stop.wait(min(self.every, RETRY_SECONDS))
                continue
            self.fetched += 1
            self._last_error = None
            log.info("prices refreshed from %s: %d models", self.url, done.models)

    def _wait(self) -> float:
        try:
            age = time.time() - os.stat(self.path).st_mtime
        except OSError:
            return 0.0
        return max(0.0, self.every - age)


def use_saved(db: str, user_file: str) -> None:
    """Price from now on with what is saved: the data fetched next to `db`, then the user's file.

    For a process that prices once (the jobs, the CLI): as the writer would, a file that
    cannot be used is logged and left out.
    """
    PriceFiles(db, "", user_file, "", 0)  # reading both files hands them to pricing


class PriceFiles:
    """The writer's price sources: the fetched data and the user's file, reloaded when they change.

    Polled by the writer between batches, never per request. The schedule (when on) only
    writes the data file, so a hand-run `lectr prices update` and a scheduled one reach
    the writer alike. A file that cannot be used is logged, and the last good one stays.
    """

    def __init__(self, db: str, data_file: str, user_file: str, url: str, refresh_hours: float) -> None:
        data_file = data_file or data_path(db)
        self.data = WatchedFile(data_file, pricing.load_data_file, None, log.warning, self._loaded)
        self.user = WatchedFile(user_file, load_price_file, PriceList(), log.error, self._loaded)
        self.refresher = Refresher(url, data_file, refresh_hours) if refresh_hours > 0 else None
        self._next_poll = 0.0
        self.poll()

    def start(self) -> None:
        if self.refresher is not None:
            self.refresher.start()

    def stop(self) -> None:
        if self.refresher is not None:
            self.refresher.stop()

    def poll(self) -> None:
        if time.monotonic() < self._next_poll:
            return
        self._next_poll = time.monotonic() + RELOAD_SECONDS
        self.data.poll()
        if self.user.path:
            self.user.poll()

    def _loaded(self, watched: WatchedFile) -> None:
        pricing.use(self.data.value, self.user.value)
        if watched is self.data:
            models = sum(len(p.models) for p in watched.value.providers)
            log.info("prices: using %s (%d models) before the bundled data", watched.path, models)
        else:
            log.info("prices: %d entries from %s, before all others", len(watched.value.entries), watched.path)
