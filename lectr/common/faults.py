"""Failpoints: named places where Lectr can be made to fail on purpose.

Lectr promises that its own failures never fail a request, and that a failing
background job is retried. Some of those failures have no outside cause a test could
arrange (a rule evaluation that raises, a job that crashes), so the code names the
places, and the environment arms them for one run:

    LECTR_FAILPOINTS="rules.evaluate,anomalies.run=2" mitmdump -s addons/lectr.py

makes every rule evaluation raise, and the first two anomaly runs (counted per process).
The places: rules.evaluate, aggregate.run, anomalies.run, recommend.run.
Unset (always, outside tests), `check` costs one truth test.
"""

from __future__ import annotations

import os

ENV = "LECTR_FAILPOINTS"


class InjectedFault(RuntimeError):
    """Raised at an armed failpoint."""


def parse(spec: str) -> dict[str, int | None]:
    """'a,b=2' -> {'a': None (every time), 'b': 2 (the first two times)}."""
    armed: dict[str, int | None] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, times = item.partition("=")
        armed[name.strip()] = int(times) if times.strip() else None
    return armed


_armed = parse(os.environ.get(ENV, ""))


def check(name: str) -> None:
    """Raise InjectedFault if `name` is armed (and has times left)."""
    if not _armed or name not in _armed:
        return
    left = _armed[name]
    if left is not None:
        if left <= 0:
            return
        _armed[name] = left - 1
    raise InjectedFault(f"failpoint {name!r} ({ENV})")
