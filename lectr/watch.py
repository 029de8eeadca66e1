"""Reload a file's parsed contents when the file changes, keeping the last good value.

Used for the rules file, the secrets file and the key store. `poll()` is cheap (one
stat) unless the file changed; it is called from a background task, never per request.
The parsed value is swapped in with one assignment, so a reader sees the old value or
the new one, never half of each.
"""

from __future__ import annotations

import os
from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class WatchedFile(Generic[T]):
    def __init__(self, path: str, load: Callable[[str], T], missing: T, log: Callable[[str], None] = print) -> None:
        self.path = path
        self.value: T = missing
        self.error: str | None = None  # why the last change was rejected, while it stands
        self._load = load
        self._missing = missing
        self._log = log
        self._signature: tuple | None = ()  # () = never polled; None = file absent

    def poll(self) -> bool:
        """Reload if the file changed since the last poll. True when a new value was taken."""
        signature = _signature(self.path)
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
            self.error = str(e)
            self._log(f"{self.path} rejected, keeping the last good contents: {e}")
            return False
        self.value, self.error = value, None
        return True


def _signature(path: str) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)
