"""Failpoints: named places where Lectr can be made to fail on purpose.

Lectr promises that its own failures never fail a request, and that a failing
background job is retried. Some of those failures have no outside cause a test could
arrange (a rule evaluation that raises, a job that crashes), so the code names the
places, and the environment (or the proxy's lectr_failpoints option) arms them for one run:

    LECTR_FAILPOINTS="rules.evaluate,anomalies.run=2" mitmdump -s addons/lectr.py

makes every rule evaluation raise, and the first two anomaly runs (counted per process).
Unset (always, outside tests), `check` costs one truth test.
"""

from __future__ import annotations

import os

ENV = "LECTR_FAILPOINTS"
PLACES = ("rules.evaluate", "aggregate.run", "anomalies.run", "recommend.run")


class InjectedFault(RuntimeError):
    """Raised at an armed failpoint: it stands for a bug, so it is no LectrError."""


def parse(spec: str) -> dict[str, int | None]:
    """'a,b=2' -> {'a': None (every time), 'b': 2 (the first two times)}. ValueError: not in that form."""
    armed: dict[str, int | None] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, times = item.partition("=")
        armed[name.strip()] = int(times) if times.strip() else None
    return armed


def unknown(spec: str) -> list[str]:
    """The names in `spec` that are no failpoint (a typo would arm nothing, silently)."""
    return [name for name in parse(spec) if name not in PLACES]


_spec = os.environ.get(ENV, "")
_armed = parse(_spec)


def use(spec: str) -> None:
    """Arm the failpoints `spec` names, unless they are the ones armed already (their counts then go on)."""
    global _spec, _armed
    if spec != _spec:
        _spec, _armed = spec, parse(spec)


def armed() -> str:
    """The spec in force in this process, to hand to a child process (`use` it there)."""
    return _spec


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
