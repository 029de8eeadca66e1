"""Process limits a proxy of many long streams needs, raised at start.

Each open stream holds two file descriptors in the proxy (client and provider), so the
common soft limit of 1,024 open files caps a proxy at about 500 streams; past it new
connections fail with "Too many open files" and the clients get 502s. The soft limit can
be raised to the hard one without privileges, as Go's runtime and Node do for themselves.
"""

from __future__ import annotations

import resource
import sys

ENOUGH_OPEN_FILES = 4096  # below this after raising, the log says how to allow more


def raise_open_files() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit; returns (before, after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = (1 << 20) if hard == resource.RLIM_INFINITY else hard
    if sys.platform == "darwin":
        wanted = min(wanted, 10240)  # macOS refuses more than OPEN_MAX
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return soft, soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    except (ValueError, OSError):  # a sandbox that forbids it: keep what we have
        return soft, soft
    return soft, wanted
