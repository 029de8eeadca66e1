"""The last keys, rules and experiments a proxy read from a shared database, kept on its own disk.

A proxy that starts (or restarts) while PostgreSQL cannot be reached would otherwise hold no keys,
and answer 401 to every request that would have succeeded without Lectr; with this copy it starts
at once with what was in force, and takes the database's again as soon as it can read them.
Written after each successful read from the database (only when something changed, so rarely),
owner-only, beside mitmproxy's own files (its confdir): key hashes, never keys. A DuckDB file is
on the proxy's own disk already and needs no copy.

A copy older than `MAX_AGE` is not used: a host stopped for weeks and started during an outage
must not bring back the keys revoked meanwhile. A copy that cannot be written anew is removed, not
left behind with the keys it held.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)

MAX_AGE = 24 * 3600.0  # seconds a copy is good for


def cache_file(confdir: str, store: str, name: str) -> Path:
    """Where the copy of `name` (keys, rules, experiments) read from `store` (its display) is kept."""
    digest = hashlib.sha256(store.encode()).hexdigest()[:12]  # one copy per database, named without its URL
    return Path(confdir).expanduser() / "lectr-last-good" / f"{name}-{digest}.json"


def remember(file: Path, value: object) -> None:
    """Keep `value` (JSON) in `file`, atomically and owner-only. A failure is logged, never raised: the
    copy is a fallback, and the value in force is in memory already."""
    tmp = None
    try:
        file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=f".{file.name}.")
        with os.fdopen(fd, "w") as f:  # mkstemp makes it 0600
            json.dump({"written_at": time.time(), "value": value}, f)
        os.replace(tmp, file)
    except (OSError, TypeError, ValueError) as e:
        log.warning("could not keep a copy of %s in %s: %s; removing the older copy", file.stem, file.parent, e)
        for stale in (tmp, file):
            if stale:
                Path(stale).unlink(missing_ok=True)


def recall(file: Path) -> dict | None:
    """{"value": what was kept} from `file`; None when there is none, it cannot be read, or it is older
    than MAX_AGE."""
    try:
        kept = json.loads(file.read_text())
        fresh = time.time() - float(kept["written_at"]) < MAX_AGE
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return {"value": kept.get("value")} if fresh else None
