"""Runtime: the proxy process set up for many concurrent, long-lived streams.

- At load, the open-files limit is raised to the hard limit (lectr/proxy/limits.py), and the log
  says how to allow more when even that is low.
- Once running, the objects made at start (mitmproxy, Lectr and their imports: hundreds of
  thousands) are moved out of the garbage collector's sight with `gc.freeze()`. A full
  collection otherwise walks all of them every time, pausing every stream in flight for
  tens of milliseconds; what requests allocate afterwards is collected as before.
"""

from __future__ import annotations

import gc
import logging

from lectr.proxy.limits import ENOUGH_OPEN_FILES, raise_open_files

log = logging.getLogger(__name__)


class Runtime:
    def __init__(self) -> None:
        self.open_files = 0

    def load(self, loader) -> None:
        before, self.open_files = raise_open_files()
        if self.open_files < ENOUGH_OPEN_FILES:
            log.warning(
                "open files limited to %s: about %s streams at once. Raise the hard limit (ulimit -Hn, "
                "or LimitNOFILE= in a systemd unit) to serve more.",
                self.open_files,
                self.open_files // 2,
            )
        elif before != self.open_files:
            log.debug("open files limit raised from %s to %s", before, self.open_files)

    def running(self) -> None:
        gc.collect()
        gc.freeze()

    def status(self) -> dict[str, int]:
        return {"open_files_limit": self.open_files, "gc_frozen": gc.get_freeze_count()}
