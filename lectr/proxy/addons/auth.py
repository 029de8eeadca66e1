"""Auth: every request Lectr handles must carry a valid X-Lectr-Key.

Keys are checked against hashes held in memory; the key store (DuckDB) is re-read in
the background when a key is created or revoked (`lectr keys` touches a stamp file
beside it), so both take effect within seconds without a restart, and no request waits
on the database.
"""

from __future__ import annotations

import logging
import math

from mitmproxy import ctx, http

from lectr.common.errors import LectrError
from lectr.common.keys import KeyRing
from lectr.common.watch import Poller, WatchedFile
from lectr.proxy.addons import PRESENTED_KEY, at_least, pending_record, respond_error, timed
from lectr.proxy.ratelimit import FailureLimiter
from lectr.store import StorageError, default_db_path, open_store

log = logging.getLogger(__name__)

REFRESH_SECONDS = 2.0
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
            "Lectr's DuckDB file: request logs and, unless lectr_keys_db names another file, org keys. "
            "Default: $LECTR_DB, else lectr.duckdb in the working directory.",
        )
        loader.add_option(
            "lectr_keys_db",
            str,
            "",
            "DuckDB file the org keys are read from (read-only); empty: lectr_db. For several Lectr processes "
            "behind one address (scripts/workers.sh): each writes its own lectr_db, all read keys from the main file.",
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
            path = ctx.options.lectr_keys_db or ctx.options.lectr_db
            # Failing to read the store (a writer's lock) is passing: read it again at the next poll.
            self.keys = WatchedFile(
                path, self._load_keys, KeyRing(), log.warning, retry_on=_PASSING, signature=_keys_signature
            )
            self.keys.poll()
            if not len(self.keys.value):
                log.warning(
                    "No Lectr keys in %s yet: every request will get 401. "
                    "Create one with: lectr keys create ORG --db %s",
                    path,
                    path,
                )

    def _load_keys(self, path: str) -> KeyRing:
        ring = KeyRing(open_store(path).active_keys())
        loaded = len(self.keys.value)
        if not len(ring) and loaded and not open_store(path).has_keys():
            # Revoking the last key is a wish; a file without a single key (deleted, and created
            # anew by the event writer, or replaced) is not: org traffic goes on meanwhile.
            raise NoKeys(
                f"{path} holds no keys at all (was it deleted or replaced?); keeping the {loaded} keys loaded "
                f"before. Create keys there with: lectr keys create ORG --db {path}"
            )
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


def _keys_signature(path: str) -> object:
    """Changes when keys are created or revoked or the file is replaced (Store.keys_version). It opens
    no database: the event writer changes the file every second."""
    return open_store(path).keys_version()
