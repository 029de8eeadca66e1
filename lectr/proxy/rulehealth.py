"""Rule health: a rule whose target keeps failing is suspended for a while, then tried again.

Pure: the caller passes the time. When a routed request fails and Lectr falls back to the
original request (lectr.proxy.addons.fallback), the rule's failure is counted here. After
`threshold` consecutive failures, each within `window` seconds of the one before, the rule
is suspended for `cooldown` seconds: matching requests pass through unchanged, so a
broken target no longer costs each of them a failed attempt. When the cool-down is over,
one request tries the target again (the others still pass through until it is answered):
a success makes the rule active, a failure suspends it for another cool-down. This is a
circuit breaker per rule, and per proxy process: each worker learns on its own.

Each change of a rule's state is told to `notify` (the proxy logs it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from lectr.common.events import SUSPENDED


@dataclass(frozen=True, slots=True)
class Policy:
    threshold: int = 3  # consecutive fallbacks that suspend a rule
    window: float = 60  # seconds: a failure longer after the previous one starts a new count
    cooldown: float = 60  # seconds a suspended rule stays suspended before one request tries it

    def __post_init__(self) -> None:
        if self.threshold < 1 or self.window <= 0 or self.cooldown <= 0:
            raise ValueError("a rule-suspension threshold is at least 1, and its window and cool-down are positive")


@dataclass(slots=True)
class _State:
    failures: int = 0
    last_failure: float = 0.0
    last_error: str = ""
    suspended_until: float | None = None  # None: active
    trial: float | None = None  # when one request began trying the target after a cool-down


@dataclass(slots=True)
class RuleHealth:
    policy: Policy = field(default_factory=Policy)
    notify: Callable[[str], None] = lambda change: None
    _states: dict[str, _State] = field(default_factory=dict)

    def skip_reason(self, rule_id: str, now: float) -> str | None:
        """None: apply the rule (it is active, or this request is its trial); else why not."""
        state = self._states.get(rule_id)
        if state is None or state.suspended_until is None:
            return None
        # A trial that never ended (its client went away) does not keep the rule suspended forever.
        if now >= state.suspended_until and (state.trial is None or now - state.trial > self.policy.cooldown):
            state.trial = now
            self.notify(f"rule {rule_id!r}: cool-down over, one request tries its target again")
            return None
        return (
            f"{SUSPENDED}rule {rule_id!r} failed {state.failures} times in a row (last: {state.last_error}); "
            "requests pass through unchanged until it is tried again"
        )

    def failed(self, rule_id: str, error: str, now: float) -> None:
        state = self._states.setdefault(rule_id, _State())
        if state.failures and now - state.last_failure > self.policy.window:
            state.failures = 0
        state.failures += 1
        state.last_failure, state.last_error = now, error
        if state.trial is not None or (state.suspended_until is None and state.failures >= self.policy.threshold):
            again = "still failing" if state.trial is not None else f"{state.failures} consecutive failures"
            state.suspended_until, state.trial = now + self.policy.cooldown, None
            self.notify(
                f"rule {rule_id!r} suspended for {self.policy.cooldown:g}s after {again} (last: {error}); "
                "matching requests pass through unchanged"
            )

    def succeeded(self, rule_id: str) -> None:
        state = self._states.get(rule_id)
        if state is None:
            return
        if state.suspended_until is not None:
            if state.trial is None:
                return  # answered by a request routed before the suspension: not the trial
            self.notify(f"rule {rule_id!r} works again: resumed")
        del self._states[rule_id]

    def suspended(self) -> dict[str, str]:
        """The suspended rules, with their last error."""
        return {rule: s.last_error for rule, s in self._states.items() if s.suspended_until is not None}
