"""Reload a file's parsed contents when the file changes, keeping the last good value.

Used for the rules file, the secrets file and the key store. `poll()` is cheap (one
stat) unless the file changed; it is called from a background task, never per request.
The parsed value is swapped in with one assignment, so a reader sees the old value or
the new one, never half of each.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Generic, Sequence, TypeVar

T = TypeVar("T")
_RETRY = object()  # a signature no file has: the next poll reads the file again


def file_signature(path: str) -> tuple | None:
    """Changes whenever the file is written or replaced; None when there is no file."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class WatchedFile(Generic[T]):
    def __init__(
        self,
        path: str,
        load: Callable[[str], T],
        missing: T,
        log: Callable[[str], None] = print,
        on_load: Callable[[WatchedFile[T]], None] | None = None,
        retry_on: tuple[type[Exception], ...] = (OSError,),
        signature: Callable[[str], object] = file_signature,
    ) -> None:
        self.path = path
        self.value: T = missing
        self.error: str | None = None  # why the last change was rejected, while it stands
        self._load = load
        self._log = log
        self._on_load = on_load
        self._retry_on = retry_on  # errors that may pass (a lock, a permission): try again next poll
        self._signature_of = signature  # what tells that the file changed; None: there is no file
        self._signature: object = ()  # () = never polled; None = file absent

    def poll(self) -> bool:
        """Reload if the file changed since the last poll. True when a new value was taken."""
        signature = self._signature_of(self.path)
        if signature == self._signature:
            return False
        first = self._signature == ()
        self._signature = signature
        if signature is None:
            if not first:
                self._log(f"{self.path} was removed; keeping the last good contents")
            return False
        try:
            value = self._load(self.path)
        except Exception as e:  # a bad file must never take the proxy down
            if isinstance(e, self._retry_on):
                self._signature = _RETRY
            if str(e) != self.error:  # say it once, not at every poll
                self._log(f"{self.path} rejected, keeping the last good contents: {e}")
            self.error = str(e)
            return False
        self.value, self.error = value, None
        if self._on_load:
            self._on_load(self)
        return True


class Poller:
    """Polls watched files every `interval` seconds in a background task, each poll in a thread of its
    own (not asyncio's shared pool: a poll that waits on an unreachable database must not hold the
    threads mitmproxy resolves upstream hostnames with).

    `files` is asked afresh each round, because an addon replaces its WatchedFile when
    an option changes. An addon lists its Poller in its `addons` attribute, and mitmproxy
    calls `running` and `done` here like any addon's. `owner` names it: mitmproxy refuses two
    addons of one name in one context.
    """

    def __init__(self, interval: float, files: Callable[[], Sequence[WatchedFile]], owner: str = "") -> None:
        self.name = f"{owner} poller".strip()
        self.interval = interval
        self._files = files
        self._task: asyncio.Task | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"lectr-{owner or 'files'}-poller")

    def running(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def done(self) -> None:
        if self._task:
            self._task.cancel()
        self._thread.shutdown(wait=False, cancel_futures=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.interval)
            for watched in self._files():
                await loop.run_in_executor(self._thread, watched.poll)
