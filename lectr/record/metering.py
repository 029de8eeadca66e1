"""Metering: turn an `Event` into the stored row, with its token counts and cost.

Runs in the writer process (lectr/record/writer.py), never in the proxy. Token source, in order of trust:
- `provider`: the provider reported usage (in the body, or in the stream);
- `calibrated`: tiktoken's count, scaled by what this model's provider reported on
  earlier responses where Lectr had both (see `tokens.Calibrator`);
- `tokeniser`: tiktoken's count alone;
- None: nothing to count (an error before any output, or a body too large to keep).
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime, timezone
from typing import Callable

from lectr.common import decompress, jsonbody, usage
from lectr.common.events import Event, task_valid
from lectr.prices import pricing
from lectr.record import estimate, tokens, written
from lectr.store import STORED_DEGRADED

log = logging.getLogger(__name__)

# After a model's calibration window is full, one response in this many still feeds it.
CALIBRATION_EVERY = 50


# Why a row was stored with less than it could have had (counted like drops: lectr.record.writer).
# pricing_error: stored without a cost; counting_error: stored without tokens (so without a cost).
PRICING_ERROR, COUNTING_ERROR = STORED_DEGRADED
# Each model's first failure is logged; past this many models, failures are only counted.
REPORTED_MAX = 1000


class Meter:
    def __init__(self, calibrator: tokens.Calibrator | None = None) -> None:
        self.calibrator = calibrator or tokens.Calibrator()
        self.degraded: dict[str, int] = {}  # rows by reason (PRICING_ERROR, COUNTING_ERROR), since start
        self._seen: dict[str, int] = {}
        self._reported: set[tuple[str, str | None]] = set()

    def row(self, event: Event) -> dict:
        # Aware: prices change by date and, for some models, by the time of day (UTC).
        at = datetime.fromtimestamp(event.ts, timezone.utc)
        response = decode(event.response_body, event.response_encoding) or b""
        if event.provider == "azure":
            # Azure's model is the deployment's name ("prod-chat"); the response names the model.
            reported = usage.reported_model(response)
            if reported and reported != event.model_actual:
                event = dataclasses.replace(event, model_actual=reported)
        try:
            counted = self._tokens(event, response) if event.endpoint in usage.METERED else None
        except Exception as e:  # a parser's bug must not lose the row: it is stored uncounted
            self._degrade(COUNTING_ERROR, event.model_actual, e)
            counted = None
        priced, price_known = self._price(event, counted, at)
        row = {
            "ts": at.replace(tzinfo=None),  # stored as naive UTC (lectr.store.utc_now)
            "request_id": event.request_id,
            "org_id": event.org_id,
            "mode": event.mode,
            "endpoint": event.endpoint,
            "provider": event.provider,
            "provider_unknown": event.provider_unknown,
            "model_requested": event.model_requested,
            "model_actual": event.model_actual,
            "rule_id": event.rule_id,
            "rule_name": event.rule_name,
            "routed": event.rule_id is not None and event.rule_changed,  # a fallback cleared rule_id
            "route_skip_reason": event.route_skip_reason,
            "skipped_rule_id": event.skipped_rule_id,
            "fallback_model": event.fallback_model,
            "fallback_status": event.fallback_status,
            "fallback_error": event.fallback_error,
            "fallback_ms": event.fallback_ms,
            "passthrough_reason": event.passthrough_reason,
            "feature": event.feature,
            "task": event.task,
            "task_valid": task_valid(event.task),
            "streaming": event.streaming,
            "status_code": event.status_code,
            "error_category": event.error_category,
            "latency_ms": event.latency_ms,
            "ttfb_ms": event.ttfb_ms,
            "prompt_tokens": counted[0].prompt if counted else None,
            "completion_tokens": counted[0].completion if counted else None,
            "cached_tokens": counted[0].cached if counted else None,
            "reasoning_tokens": counted[0].reasoning if counted else None,
            "token_source": counted[1] if counted else None,
            "cost_usd": priced.usd if priced else None,
            "price_known": price_known,
            "price_source": priced.source if priced else None,
            "request_bytes": event.request_bytes,
            "response_bytes": event.response_bytes,
            "lectr_overhead_us": event.lectr_overhead_us,
        }
        return {name: _storable(value) for name, value in row.items()}

    def _price(
        self, event: Event, counted: tuple[usage.Usage, str] | None, at: datetime
    ) -> tuple[pricing.Price | None, bool | None]:
        """The price and whether the model has one; None, None when there is no provider or model."""
        provider, model = event.provider, event.model_actual
        if not provider or not model or event.endpoint not in usage.METERED:
            return None, None
        if not _priceable(model):
            return None, False
        known = None
        try:
            known = pricing.has_price(provider, model)
            return (pricing.price(provider, model, counted[0], at) if known and counted else None), known
        except Exception as e:  # broken price data (a fetched file, a library bug) must not lose the row
            self._degrade(PRICING_ERROR, model, e)
            return None, known

    def _degrade(self, reason: str, model: str | None, error: Exception) -> None:
        self.degraded[reason] = self.degraded.get(reason, 0) + 1
        key = (reason, model[:MODEL_NAME_MAX] if model else None)
        if key in self._reported or len(self._reported) >= REPORTED_MAX:
            return
        self._reported.add(key)
        what, without = ("price", "a cost") if reason == PRICING_ERROR else ("count", "token counts")
        log.error(
            "could not %s a response of model %r (%s: %s); its rows are stored without %s and counted as %r "
            "in dropped_events. Logged once per model.",
            what,
            key[1],
            type(error).__name__,
            error,
            without,
            reason,
            exc_info=error,
        )

    def _tokens(self, event: Event, response: bytes) -> tuple[usage.Usage, str] | None:
        style = usage.style_of(event.endpoint)
        if event.streaming:
            reported = usage.from_stream(response, style)
            text = lambda: written.stream_output(response, style)  # noqa: E731 (read only when counted)
        else:
            body = jsonbody.parse_json(response)
            reported = usage.from_response(body, style)
            text = lambda: written.body_output(body, style)  # noqa: E731
        if reported is not None and not event.response_truncated:
            self._calibrate(event, reported, text)
            return reported, "provider"
        if event.status_code is None or event.status_code >= 400 or not event.streaming:
            return None  # errors bill nothing; a complete non-streamed body without usage has nothing to add
        if event.error_category == "stream_error":
            return None  # what a failed stream bills is the provider's to say, not an estimate's
        counted = _count(event, text())
        if counted is None:
            return None
        ratios = self.calibrator.ratios(event.model_actual) if event.model_actual else None
        if ratios is None:
            return counted, "tokeniser"
        return usage.Usage(round(counted.prompt * ratios[0]), round(counted.completion * ratios[1])), "calibrated"

    def _calibrate(self, event: Event, reported: usage.Usage, text: Callable[[], written.Output]) -> None:
        model = event.model_actual
        if not model or event.request_body is None:
            return
        seen = self._seen[model] = self._seen.get(model, 0) + 1
        if not self.calibrator.wants(model) and seen % CALIBRATION_EVERY:
            return
        written = text()
        counted = _count(event, written) if written else None
        if counted is not None:
            self.calibrator.add(model, reported.prompt, counted.prompt, reported.completion, counted.completion)


def _count(event: Event, text: written.Output) -> usage.Usage | None:
    """tiktoken's count of the request's prompt and of what the model wrote."""
    request = jsonbody.parse_json(decode(event.request_body, event.request_encoding))
    if request is None:
        return None
    try:
        return estimate.count(request, text, usage.style_of(event.endpoint), event.model_actual)
    except Exception:  # an encoding that cannot be loaded must not lose the event
        log.exception("token counting failed for model %s", event.model_actual)
        return None


# No model has a longer name. A longer one (a client can send 100 KB) has no price, and is
# not looked up: each lookup costs time and stays in pricing's cache.
MODEL_NAME_MAX = 256


def _priceable(model: str | None) -> bool:
    return bool(model) and len(model) <= MODEL_NAME_MAX


def decode(data: bytes | None, encoding: str) -> bytes | None:
    """Undo a Content-Encoding. Unknown or broken encodings, and bombs, give None (nothing to count)."""
    return decompress.decoded(data, encoding)


def _storable(value: object) -> object:
    """The value as the database can take it. One row it cannot take fails its whole batch,
    and the writer would retry that batch until the queue behind it overflowed."""
    if isinstance(value, str) and not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:  # a header or path decoded with surrogateescape, or JSON's "\ud800"
            return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in value)
    elif isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        return None  # BIGINT
    return value
