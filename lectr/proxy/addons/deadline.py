"""Per-flow deadlines on the event loop, and cutting a connection when one passes.

mitmproxy only closes a connection after 10 minutes without any traffic on it; a
provider that never answers, or a client that trickles its body a byte at a time, would
hold the flow for as long as it likes. UpstreamGuard, ClientGuard and Fallback set
deadlines here.

Nearly every deadline is cancelled long before it passes (a provider's headers come in
well under its time limit), so setting and cancelling one must cost next to nothing: a
dict entry each, where an asyncio timer costs ~2 µs to make and cancel. One task looks
for passed deadlines every TICK seconds, so a deadline fires up to TICK late.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from mitmproxy import http

log = logging.getLogger(__name__)

TICK = 0.05  # seconds between looks: time limits are seconds long, 50 ms late is nothing


class Deadlines:
    """At most one deadline per flow; one that passes calls `expire(flow)` once."""

    def __init__(self) -> None:
        self._due: dict[str, tuple[float, http.HTTPFlow, Callable[[http.HTTPFlow], None]]] = {}
        self._watcher: asyncio.Task | None = None

    def set(self, flow: http.HTTPFlow, seconds: float, expire: Callable[[http.HTTPFlow], None]) -> None:
        self._due[flow.id] = (time.monotonic() + seconds, flow, expire)
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.get_running_loop().create_task(self._watch())

    def cancel(self, flow: http.HTTPFlow) -> None:
        self._due.pop(flow.id, None)

    def clear(self) -> None:
        self._due.clear()
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None

    def __len__(self) -> int:
        return len(self._due)

    async def _watch(self) -> None:
        while self._due:
            await asyncio.sleep(TICK)
            now = time.monotonic()
            passed = [key for key, (due, _, _) in self._due.items() if due <= now]
            for key in passed:
                _, flow, expire = self._due.pop(key)
                try:
                    expire(flow)
                except Exception:  # one flow's failure must not stop the others' deadlines
                    log.exception("a deadline's action failed")
