"""One sample: the candidate's request sent, both answers read and compared, the row it becomes.

`shadow_calls` rows have every column (a batch goes in as one table); `row` fills the live
request's side from its event and metered row, `compare_pair` the candidate's. What a row may
hold is numbers, names and reasons: never a prompt or an answer (migration m010).
"""

from __future__ import annotations

import logging
import time
import traceback
from datetime import datetime, timezone
from typing import Callable

from lectr.common import usage
from lectr.common.decompress import decoded
from lectr.common.events import Event
from lectr.common.jsonbody import parse_json
from lectr.prices import pricing
from lectr.shadow import answers, calls, compare

log = logging.getLogger(__name__)

COLUMNS = (
    "ts", "experiment_id", "request_id", "org_id", "feature", "task", "live_provider", "live_model",
    "provider", "model", "outcome", "detail", "comparison", "score", "agreed", "length_ratio", "status_code",
    "latency_ms", "live_latency_ms", "prompt_tokens", "completion_tokens", "cost_usd",
    "live_prompt_tokens", "live_completion_tokens", "live_cost_usd",
)  # fmt: skip


def row(event: Event, live: dict) -> dict:
    """A shadow_calls row with the live request's side filled in."""
    order = event.shadow
    found = dict.fromkeys(COLUMNS)
    found.update(
        experiment_id=order.experiment_id,
        request_id=event.request_id,
        org_id=event.org_id,
        feature=event.feature,
        task=event.task,
        live_provider=event.provider,
        live_model=live.get("model_actual") or event.model_actual,
        provider=order.provider,
        model=order.model,
        live_latency_ms=event.latency_ms,
        live_prompt_tokens=live.get("prompt_tokens"),
        live_completion_tokens=live.get("completion_tokens"),
        live_cost_usd=live.get("cost_usd"),
    )
    return found


def finish(found: dict, outcome: str, detail: str | None) -> dict:
    found.update(ts=datetime.now(timezone.utc).replace(tzinfo=None), outcome=outcome, detail=detail)
    return found


def compare_pair(event: Event, found: dict, send: Callable[..., calls.Reply], timeout: float) -> float | None:
    """Send the candidate's request and fill in `found`; the cost to count against the caps (0 for a
    failed request, which providers do not bill; None: sent, but its cost is unknown)."""
    order = event.shadow
    style = usage.style_of(event.endpoint)
    live = _live_answer(event, style)
    # Nothing to compare with: an empty live answer would agree with an empty candidate's.
    if not live.text and not live.calls:
        finish(found, "unsupported", "Lectr could not read the live answer")
        return 0.0
    try:
        body = calls.candidate_body(event.request_body, event.request_encoding, event.endpoint, order.model)
    except calls.Unsupported as e:
        finish(found, "unsupported", str(e))
        return 0.0
    started = time.perf_counter()
    reply = send(order.url, order.headers, body, timeout)
    found.update(latency_ms=(time.perf_counter() - started) * 1000, status_code=reply.status)
    try:
        return _read(event, found, reply, style, live)
    except Exception as e:  # Lectr's bug, after the request went: it counts as sent
        where = traceback.extract_tb(e.__traceback__)[-1]  # no message: it could hold an answer's text
        log.error("could not compare the shadow answer for %s: %s at %s:%d", event.request_id,
                  type(e).__name__, where.filename, where.lineno)  # fmt: skip
        finish(found, "lectr_error", f"Lectr error: {type(e).__name__}")
        return None


def _read(event: Event, found: dict, reply: calls.Reply, style: str, live: answers.Answer) -> float | None:
    order = event.shadow
    answer = parse_json(reply.body) if reply.status == 200 else None
    if not isinstance(answer, dict):
        finish(found, "candidate_error", reply.error or "the answer is not a JSON object")
        return 0.0
    used = usage.from_response(answer, style)
    # Azure's model is a deployment's name; its answer names the model, as the live row's metering reads it.
    model = (usage.reported_model(reply.body) if order.provider == "azure" else None) or order.model
    cost = _cost(order.provider, model, used)
    result = compare.compare(event.task, live, answers.from_body(answer, style))
    found.update(
        comparison=result.kind,
        score=result.score,
        agreed=result.agreed,
        length_ratio=result.length_ratio,
        prompt_tokens=used.prompt if used else None,
        completion_tokens=used.completion if used else None,
        cost_usd=cost,
    )
    finish(found, "compared", None)
    return cost


def _live_answer(event: Event, style: str) -> answers.Answer:
    data = decoded(event.response_body, event.response_encoding or None) or b""
    if event.streaming:
        return answers.from_stream(bytes(data), style)
    return answers.from_body(parse_json(data), style)


def _cost(provider: str, model: str, used: usage.Usage | None) -> float | None:
    if used is None:
        return None  # the provider reported no usage: tokens unknown, so is the cost
    try:
        return pricing.cost_usd(provider, model, used)
    except Exception as e:  # broken price data must not lose the comparison
        log.error("could not price the shadow request's %s/%s: %s", provider, model, type(e).__name__)
        return None
