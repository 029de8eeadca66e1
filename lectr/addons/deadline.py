"""Per-flow deadlines on the event loop, and cutting a connection when one passes.

mitmproxy only closes a connection after 10 minutes without any traffic on it; a
provider that never answers, or a client that trickles its body a byte at a time, would
hold the flow for as long as it likes. UpstreamGuard and ClientGuard set deadlines here.
"""

from __future__ import annotations

import asyncio
from typing import Callable

from mitmproxy import http


class Deadlines:
    """At most one timer per flow; a timer that fires calls `expire(flow)` once."""

    def __init__(self) -> None:
        self._timers: dict[str, asyncio.TimerHandle] = {}

    def set(self, flow: http.HTTPFlow, seconds: float, expire: Callable[[http.HTTPFlow], None]) -> None:
        self.cancel(flow)
        self._timers[flow.id] = asyncio.get_running_loop().call_later(seconds, self._fire, flow, expire)

    def cancel(self, flow: http.HTTPFlow) -> None:
        timer = self._timers.pop(flow.id, None)
        if timer is not None:
            timer.cancel()

    def clear(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    def __len__(self) -> int:
        return len(self._timers)

    def _fire(self, flow: http.HTTPFlow, expire: Callable[[http.HTTPFlow], None]) -> None:
        self._timers.pop(flow.id, None)
        expire(flow)
