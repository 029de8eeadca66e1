"""Fallback: when a rule's target fails, the client gets the answer of its original request.

A request a rule changed carries the original (`record.original`, kept by Router). When
its target fails before any byte reached the client (an error lectr.proxy.fallbacks names, a
refused or dropped connection, or no response headers within `lectr_fallback_timeout`),
the original request goes, unchanged and with the client's own credentials, to the
original provider, in the same flow (lectr.proxy.addons.internals, patch 5): the client sees one
answer, streaming included. The record keeps the failed attempt (status, error, time).

Each fallback counts against the rule (lectr.proxy.rulehealth); a rule that keeps failing is
suspended for a cool-down, so it stops costing every matching request a failed attempt.
"""

from __future__ import annotations

import logging
import time

from mitmproxy import ctx, http

from lectr.common.decompress import decoded
from lectr.proxy import fallbacks
from lectr.proxy.addons import at_least, internals, pending_record, record_of, timed
from lectr.proxy.addons.deadline import Deadlines
from lectr.proxy.addons.router import drop_original, send_original
from lectr.proxy.addons.streamusage import sent_as_asked
from lectr.proxy.addons.upstream import expire_upstream
from lectr.proxy.flowrecord import FlowRecord
from lectr.proxy.rulehealth import Policy, RuleHealth

log = logging.getLogger(__name__)

POLICY = Policy()  # the lectr_rule_suspend_* and lectr_rule_cooldown defaults


class Fallback:
    def __init__(self, health: RuleHealth | None = None) -> None:
        self.health = health or RuleHealth(notify=log.warning)  # shared with Router, which skips suspended rules
        self.deadlines = Deadlines()
        self.fallbacks = 0  # since start

    def load(self, loader) -> None:
        loader.add_option(
            "lectr_fallback_timeout_ms",
            int,
            5000,
            "Milliseconds a routed streaming request waits for its target's response headers before Lectr sends "
            "the original request instead (0: no limit). A stream's headers come before its first token.",
        )
        loader.add_option(
            "lectr_fallback_full_timeout_ms",
            int,
            0,
            "The same for a routed non-streaming request (0: no limit, the default): its headers come only with "
            "the whole answer, so a limit here cuts long answers, and the target bills what it wrote.",
        )
        loader.add_option(
            "lectr_rule_suspend_after",
            int,
            POLICY.threshold,
            "Consecutive fallbacks (each within lectr_rule_suspend_window seconds of the last) that suspend a rule.",
        )
        loader.add_option("lectr_rule_suspend_window", int, POLICY.window, "Seconds; see lectr_rule_suspend_after.")
        loader.add_option(
            "lectr_rule_cooldown",
            int,
            POLICY.cooldown,
            "Seconds a suspended rule passes its requests through unchanged before one request tries its target again.",
        )
        internals.install()

    def configure(self, updated: set[str]) -> None:
        for name in ("lectr_fallback_timeout_ms", "lectr_fallback_full_timeout_ms"):
            if name in updated:
                at_least(name, 0, "milliseconds", "set it to 0 to turn the timeout off")
        if updated & {"lectr_rule_suspend_after", "lectr_rule_suspend_window", "lectr_rule_cooldown"}:
            self.health.policy = Policy(
                at_least("lectr_rule_suspend_after", 1, "fallbacks", f"e.g. {POLICY.threshold}"),
                at_least("lectr_rule_suspend_window", 1, "seconds", f"e.g. {POLICY.window}"),
                at_least("lectr_rule_cooldown", 1, "seconds", f"e.g. {POLICY.cooldown}"),
            )

    def running(self) -> None:
        internals.set_resend(self.resend)

    def done(self) -> None:
        internals.set_resend(None)
        self.deadlines.clear()

    def status(self) -> dict[str, int]:
        return {"fallbacks": self.fallbacks, "rules_suspended": len(self.health.suspended())}

    @timed
    def request(self, flow: http.HTTPFlow) -> None:
        record = pending_record(flow)
        if record is None or record.original is None:
            return
        limit_ms = self._limit_ms(record)
        if limit_ms:
            self.deadlines.set(flow, limit_ms / 1000, self._expire)

    @timed
    def responseheaders(self, flow: http.HTTPFlow) -> None:
        record = record_of(flow)
        if record is None or flow.response is None:
            return
        self.deadlines.cancel(flow)
        if record.original is not None and not fallbacks.may_fall_back(flow.response.status_code):
            self.health.succeeded(record.original.rule_id)
            drop_original(record)  # answered: nothing to fall back to any more

    def error(self, flow: http.HTTPFlow) -> None:
        self.deadlines.cancel(flow)

    def resend(self, flow: http.HTTPFlow, error: str | None) -> bool:
        """internals' question: send the original request now? (error: None when a response came)"""
        record = record_of(flow)
        if record is None or record.original is None:
            return False
        if record.timed_out:  # lectr_upstream_timeout is over: no time left for another attempt
            drop_original(record)
            return False
        try:
            return self._fall_back(flow, record, error)
        except Exception:  # Lectr's fault must not cost the client its answer: it gets the one that came
            log.exception("could not fall back to the original request")
            drop_original(record)
            return False

    def _fall_back(self, flow: http.HTTPFlow, record: FlowRecord, error: str | None) -> bool:
        status = None
        if error is None:
            response = flow.response
            status = response.status_code
            body = decoded(response.raw_content, response.headers.get("content-encoding"))
            error = fallbacks.failure(status, body)
            if error is None:
                drop_original(record)
                return False
        elif record.fallback_timed_out:
            error = f"no response headers within {self._limit_ms(record)} ms"
        target = record.model_actual
        # The provider's time limit, again for the new attempt (UpstreamGuard's ended with the failed one's headers).
        self.deadlines.set(flow, ctx.options.lectr_upstream_timeout, expire_upstream)
        original = send_original(flow, record)  # Router's: the request and the record's route (one per request)
        sent_as_asked(record)  # StreamUsage's: the original goes as the client sent it
        record.fallback_model, record.fallback_status, record.fallback_error = target, status, error
        record.fallback_ms = (time.perf_counter() - record.t_start) * 1000
        self.fallbacks += 1
        log.info(
            "rule %r: %s failed (%s); sending the original request to %s",
            original.rule_id,
            record.fallback_model,
            error,
            original.provider,
        )
        self.health.failed(original.rule_id, error, time.monotonic())
        return True

    def _expire(self, flow: http.HTTPFlow) -> None:
        record = record_of(flow)
        if record is None or record.original is None or flow.response is not None or not flow.live:
            return
        record.fallback_timed_out = True
        internals.cut_connection(flow.server_conn, "lectr fallback timeout")

    @staticmethod
    def _limit_ms(record: FlowRecord) -> int:
        options = ctx.options
        return options.lectr_fallback_timeout_ms if record.streaming else options.lectr_fallback_full_timeout_ms
