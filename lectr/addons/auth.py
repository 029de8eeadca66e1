"""Auth: every request Lectr handles must carry a valid X-Lectr-Key.

Keys are checked against hashes held in memory; the key store (DuckDB) is re-read in
the background when a key is created or revoked (`lectr keys` touches a stamp file
beside it), so both take effect within seconds without a restart, and no request waits
on the database.
"""

from __future__ import annotations

import logging
import os

from mitmproxy import ctx, http

from lectr import storage
from lectr.addons import PRESENTED_KEY, pending_record, respond_error, timed
from lectr.keys import KeyRing
from lectr.watch import Poller, WatchedFile, file_signature

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

    def configure(self, updated: set[str]) -> None:
        if "lectr_db" in updated or "lectr_keys_db" in updated:
            path = ctx.options.lectr_keys_db or ctx.options.lectr_db
            # The key store is never hand-edited: any failure to read it (a writer's lock) is passing.
            self.keys = WatchedFile(
                path, _load_keys, KeyRing(), log.warning, retry_on=(Exception,), signature=_keys_signature
            )
            self.keys.poll()
            if not len(self.keys.value):
                log.warning(
                    "No Lectr keys in %s yet: every request will get 401. "
                    "Create one with: lectr keys create ORG --db %s",
                    path,
                    path,
                )

    @timed
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


def _keys_signature(path: str) -> object:
    """Changes when keys are created or revoked (storage.keys_stamp) or the file is replaced.

    Not the file's own signature: the event writer changes it every second, and reopening
    DuckDB that often in the proxy's process would stall requests in flight.
    """
    try:
        inode = os.stat(path).st_ino
    except OSError:
        return None
    return inode, file_signature(str(storage.keys_stamp(path)))
