"""Auth: every request Lectr handles must carry a valid X-Lectr-Key.

Keys are checked against hashes held in memory; the key store is re-read in the background
when a key is created or revoked, so both take effect within a second without a restart, and
no request waits on the database. What tells that keys changed costs no query
(Store.keys_version): for a DuckDB file, a stamp file beside it that `lectr keys` touches; for
PostgreSQL, the NOTIFY every host's listener hears. While the store cannot be read (a lock, a
server down), the keys loaded last stay in force.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from mitmproxy import ctx, exceptions, http

from lectr.common.errors import LectrError
from lectr.common.keys import KeyRing, StoredKey
from lectr.common.watch import Poller, WatchedFile
from lectr.proxy import lastgood
from lectr.proxy.addons import PRESENTED_KEY, at_least, pending_record, respond_error, timed
from lectr.proxy.ratelimit import FailureLimiter
from lectr.store import StorageError, Store, db_argument, default_db_path, is_postgres, open_store

log = logging.getLogger(__name__)

# How often the key store's version is compared (in memory, or one stat): a key created or revoked
# on any host takes effect within a second.
REFRESH_SECONDS = 0.5
FAILURE_WINDOW_SECONDS = 60.0
FAIL_LIMIT = 30  # the lectr_auth_fail_limit default


class Auth:
    def __init__(self) -> None:
        self.keys: WatchedFile[KeyRing] = WatchedFile("", self._load_keys, KeyRing())
        self.addons = [Poller(REFRESH_SECONDS, lambda: [self.keys], "auth")]  # mitmproxy runs nested addons' hooks too
        self.failures = FailureLimiter(FAIL_LIMIT, FAILURE_WINDOW_SECONDS)

    def load(self, loader) -> None:
        loader.add_option(
            "lectr_db",
            str,
            default_db_path(),
            "Where Lectr keeps its data: a DuckDB file (one machine), or a postgresql://user:password@host:port/db "
            "URL shared by several proxy hosts. Request logs and, unless lectr_keys_db names another store, org "
            "keys. Default: $LECTR_DB, else lectr.duckdb in the working directory.",
        )
        loader.add_option(
            "lectr_keys_db",
            str,
            "",
            "The store the org keys are read from (read-only), a DuckDB file or a postgresql:// URL; empty: lectr_db. "
            "For several Lectr processes on one machine (scripts/workers.sh): each writes its own lectr_db, all "
            "read keys from the main file.",
        )
        loader.add_option(
            "lectr_auth_fail_limit",
            int,
            FAIL_LIMIT,
            "Requests with a missing or invalid X-Lectr-Key one client address may make in a burst; after that "
            "its invalid ones get 429, one more allowed every minute / this many seconds. Valid keys are never "
            "limited. 0: no limit.",
        )

    def configure(self, updated: set[str]) -> None:
        if "lectr_auth_fail_limit" in updated:
            limit = at_least("lectr_auth_fail_limit", 0, "requests", "set it to 0 to turn the limit off")
            self.failures = FailureLimiter(limit, FAILURE_WINDOW_SECONDS)
        if "lectr_db" in updated or "lectr_keys_db" in updated:
            try:
                open_store(ctx.options.lectr_db)
                store = open_store(ctx.options.lectr_keys_db or ctx.options.lectr_db)
            except StorageError as e:  # a URL of another database: its message says what Lectr takes
                raise exceptions.OptionsError(str(e)) from e
            # The watched "path" is the store's name for messages (a URL without its password).
            # Failing to read the store (a writer's lock, a server down) is passing: read it again at the next poll.
            copy = (
                lastgood.cache_file(ctx.options.confdir, store.display, "keys") if is_postgres(store.location) else None
            )
            self.keys = WatchedFile(
                store.display,
                lambda _: self._load_keys(store, copy),
                KeyRing(),
                log.warning,
                retry_on=_PASSING,
                signature=lambda _: store.keys_version(),
            )
            if self._recall_keys(copy, store):
                return  # the database at the next poll, in the background: a server away is not waited for
            self.keys.poll()
            if not len(self.keys.value) and self.keys.error is None:  # (an error was logged as such)
                log.warning(
                    "No Lectr keys in %s yet: every request will get 401. Create one with: %s",
                    store.display,
                    _create_key(store),
                )

    def _recall_keys(self, copy: Path | None, store: Store) -> bool:
        """Start from the keys last read from a PostgreSQL store (lectr.proxy.lastgood), if any were kept."""
        found = lastgood.recall(copy) if copy is not None else None
        kept = found["value"] if found else None
        if not isinstance(kept, list) or not kept:
            return False
        try:
            self.keys.value = KeyRing(StoredKey(*k) for k in kept)
        except TypeError:
            return False  # a damaged copy: the database decides, as without one
        log.info(
            "%d keys of %s: the copy kept in %s, until the database can be read", len(kept), store.display, copy.parent
        )
        return True

    def _load_keys(self, store: Store, copy: Path | None = None) -> KeyRing:
        stored = store.active_keys()
        ring = KeyRing(stored)
        loaded = len(self.keys.value)
        if not len(ring) and loaded and not store.has_keys():
            # Revoking the last key is a wish; a store without a single key (deleted, and created
            # anew by the event writer, or replaced) is not: org traffic goes on meanwhile.
            raise NoKeys(
                f"{store.display} holds no keys at all (was it deleted or replaced?); keeping the {loaded} keys "
                f"loaded before. Create keys there with: {_create_key(store)}"
            )
        if copy is not None:
            lastgood.remember(copy, [[k.key_id, k.org_id, k.key_hash] for k in stored])
        return ring

    @timed
    def request(self, flow: http.HTTPFlow) -> None:
        record = pending_record(flow)
        if record is None:
            return
        org = self.keys.value.org_for(flow.metadata.pop(PRESENTED_KEY, None))
        if org is None:
            self._refuse(flow)
            return
        record.org_id = org

    def status(self) -> dict[str, int]:
        return {"auth_failures": self.failures.failures, "auth_sources_limited": self.failures.limited()}

    def _refuse(self, flow: http.HTTPFlow) -> None:
        """401, or 429 for a source that keeps failing. Valid keys never get here, from any source."""
        source = flow.client_conn.peername[0] if flow.client_conn.peername else "?"
        wait = self.failures.retry_after(source)
        if wait:
            respond_error(
                flow,
                429,
                "too_many_invalid_keys",
                f"too many requests with a missing or invalid X-Lectr-Key from {source}; "
                f"try again in {math.ceil(wait)}s with a valid key",
            )
            flow.response.headers["retry-after"] = str(math.ceil(wait))
            return
        if self.failures.failed(source):
            log.warning(
                "%s: %d requests with a missing or invalid X-Lectr-Key; answering 429 to its invalid keys for now",
                source,
                self.failures.limit,
            )
        respond_error(
            flow,
            401,
            "invalid_lectr_key",
            "missing or invalid X-Lectr-Key header. Send the key 'lectr keys create ORG' printed, "
            "e.g. OpenAI(default_headers={'X-Lectr-Key': key}).",
        )


class NoKeys(LectrError, LookupError):
    """A key store without a single key replaced one that had keys."""


_PASSING = (OSError, StorageError)


def _create_key(store: Store) -> str:
    """The command that creates a key in `store` (a URL with *** for its password, which no message shows)."""
    return f"lectr keys create ORG --db {db_argument(store)}"
