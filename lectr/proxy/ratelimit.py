"""A limit on failed attempts per source: a token bucket each.

Pure. A source (a client address) may fail `limit` times in a burst; after that it
regains one attempt every `window / limit` seconds. Only failures spend tokens, so a
client whose key is valid is never slowed by its own traffic. Memory is bounded: a
source whose bucket is full again is forgotten, and at most `max_sources` are tracked
(the longest idle go first).
"""

from __future__ import annotations

import time
from typing import Callable


class FailureLimiter:
    def __init__(
        self, limit: int, window: float, max_sources: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit  # 0: no limit
        self.rate = limit / window if limit else 0.0  # attempts regained per second
        self.max_sources = max_sources
        self.failures = 0  # since start, every source
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # source -> (tokens, at), oldest first

    def retry_after(self, source: str) -> float:
        """Seconds until `source` may try again; 0 when it may now."""
        tokens = self._tokens(source, self._clock())
        return 0.0 if tokens >= 1 else (1 - tokens) / self.rate

    def failed(self, source: str) -> bool:
        """Count a failure. True when it used the source's last attempt (it is limited from now on)."""
        self.failures += 1
        if not self.limit:
            return False
        now = self._clock()
        tokens = max(0.0, self._tokens(source, now) - 1)
        self._buckets.pop(source, None)  # re-inserted last: the dict stays in order of last use
        self._buckets[source] = (tokens, now)
        if len(self._buckets) > self.max_sources:
            del self._buckets[next(iter(self._buckets))]
        return tokens < 1

    def limited(self) -> int:
        """Sources that may not try now."""
        now = self._clock()
        return sum(1 for source in list(self._buckets) if self._tokens(source, now) < 1)

    def _tokens(self, source: str, now: float) -> float:
        if not self.limit:
            return float("inf")
        bucket = self._buckets.get(source)
        if bucket is None:
            return float(self.limit)
        tokens = min(float(self.limit), bucket[0] + (now - bucket[1]) * self.rate)
        if tokens >= self.limit:
            del self._buckets[source]  # full again: nothing to remember
        return tokens
