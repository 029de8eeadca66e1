"""Auth: every request Lectr handles must carry a valid X-Lectr-Key.

Keys are checked against hashes held in memory; the key store (DuckDB) is re-read in
the background when its file changes, so `lectr keys create` and `revoke` take effect
within seconds without a restart, and no request waits on the database.
"""

from __future__ import annotations

import logging

from mitmproxy import ctx, http

from lectr import storage
from lectr.addons import PRESENTED_KEY, pending_record, respond_error
from lectr.keys import KeyRing
from lectr.watch import Poller, WatchedFile

log = logging.getLogger(__name__)

REFRESH_SECONDS = 2.0


class Auth:
    def __init__(self) -> None:
        self.keys: WatchedFile[KeyRing] = WatchedFile("", _load_keys, KeyRing())
        self.addons = [Poller(REFRESH_SECONDS, lambda: [self.keys])]  # mitmproxy runs nested addons' hooks too

    def load(self, loader) -> None:
        loader.add_option(
            "lectr_db",
            str,
            storage.default_db_path(),
            "Lectr's DuckDB file: org keys (and, read by other components, request logs). "
            "Default: $LECTR_DB, else lectr.duckdb in the working directory.",
        )

    def configure(self, updated: set[str]) -> None:
        if "lectr_db" in updated:
            # The key store is never hand-edited: any failure to read it (a writer's lock) is passing.
            self.keys = WatchedFile(ctx.options.lectr_db, _load_keys, KeyRing(), log.warning, retry_on=(Exception,))
            self.keys.poll()
            if not len(self.keys.value):
                log.warning(
                    "No Lectr keys in %s yet: every request will get 401. "
                    "Create one with: lectr keys create ORG --db %s",
                    ctx.options.lectr_db,
                    ctx.options.lectr_db,
                )

    def request(self, flow: http.HTTPFlow) -> None:
        record = pending_record(flow)
        if record is None:
            return
        org = self.keys.value.org_for(flow.metadata.pop(PRESENTED_KEY, None))
        if org is None:
            respond_error(
                flow,
                401,
                "invalid_lectr_key",
                "missing or invalid X-Lectr-Key header. Send the key 'lectr keys create ORG' printed, "
                "e.g. OpenAI(default_headers={'X-Lectr-Key': key}).",
            )
            return
        record.org_id = org


def _load_keys(path: str) -> KeyRing:
    return KeyRing(storage.active_keys(path))
