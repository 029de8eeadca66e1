"""What a Lectr child process says about itself: its role, as `ps`, `top` and /proc/PID/comm show it.

The writer and the jobs process are started by multiprocessing's spawn: their command lines are
all `python -c "from multiprocessing.spawn import spawn_main; ..."`, the same for both. Each names
itself at its start ("lectr-writer", "lectr-jobs"), so that whoever looks (an operator, the soak's
memory sampling) knows which is which without guessing from the order they were started in.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from typing import Iterator

WRITER = "lectr-writer"
JOBS = "lectr-jobs"


def name_process(role: str) -> None:
    """This process's name (Linux keeps 15 bytes of it); nothing where there is no /proc/self/comm."""
    if not sys.platform.startswith("linux"):
        return
    try:
        with open("/proc/self/comm", "wb") as comm:
            comm.write(role.encode()[:15])
    except OSError:  # a restricted /proc: the name is for people looking, nothing depends on it
        pass


def start_child(role: str) -> None:
    """What a Lectr child process does first (the writer's entry; the jobs pool's initializer):
    ignore Ctrl-C, which reaches the whole process group (the parent stops its children in order,
    and a child printed a KeyboardInterrupt traceback), and say its role."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    name_process(role)


@contextlib.contextmanager
def sigint_blocked() -> Iterator[None]:
    """SIGINT held back in this thread while it starts a child process, as CPython's resource tracker
    is started: the child inherits the block (and keeps it), so a Ctrl-C cannot interrupt it before
    `start_child` ignores SIGINT; here the signal waits, delivered once unblocked."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
