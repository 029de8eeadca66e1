"""Runtime: the proxy process set up for many concurrent, long-lived streams.

- At load, the open-files limit is raised to the hard limit (lectr/proxy/limits.py), and the log
  says how to allow more when even that is low.
- Once running, the objects made at start (mitmproxy, Lectr and their imports: hundreds of
  thousands) are moved out of the garbage collector's sight with `gc.freeze()`. A full
  collection otherwise walks all of them every time, pausing every stream in flight for
  tens of milliseconds; what requests allocate afterwards is collected as before.
- `lectr_failpoints` arms failpoints (lectr/common/faults.py) for tests, in this process and
  in the jobs process (the Schedule hands it on).
"""

from __future__ import annotations

import gc
import logging
import os

from mitmproxy import ctx

from lectr.common import faults
from lectr.proxy.addons import option_error
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
        loader.add_option(
            "lectr_failpoints",
            str,
            os.environ.get(faults.ENV, ""),
            f"For tests: places made to fail on purpose, e.g. 'rules.evaluate,anomalies.run=2' (NAME or NAME=TIMES, "
            f"comma-separated; places: {', '.join(faults.PLACES)}). Default: ${faults.ENV}, else none.",
        )

    def configure(self, updated: set[str]) -> None:
        if "lectr_failpoints" in updated:
            spec = ctx.options.lectr_failpoints
            must = f"NAME or NAME=TIMES, comma-separated, with NAME one of {', '.join(faults.PLACES)}"
            fix = "e.g. rules.evaluate,anomalies.run=2, or empty for none"
            try:
                unknown = faults.unknown(spec)
            except ValueError as e:  # TIMES is no whole number
                raise option_error("lectr_failpoints", must, fix) from e
            if unknown:
                raise option_error("lectr_failpoints", must, fix)
            faults.use(spec)

    def running(self) -> None:
        gc.collect()
        gc.freeze()

    def status(self) -> dict[str, int]:
        return {"open_files_limit": self.open_files, "gc_frozen": gc.get_freeze_count()}
