"""Metering: an Event becomes a stored row with token counts (provider, calibrated, tokeniser) and cost."""

import gzip
import json
from datetime import datetime, timedelta, timezone

import duckdb
import pytest
from genai_prices.data_snapshot import get_snapshot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lectr.common import usage as usage_module
from lectr.common.events import Event, EventQueue
from lectr.common.usage import Usage
from lectr.prices import pricing
from lectr.record import estimate, tokens
from lectr.record.metering import Meter
from lectr.record.tokens import Calibrator
from lectr.record.writer import Writer

TS = 1_750_000_000.0
PROMPT = "Classify the sentiment of: the parcel arrived crushed and late"
ANSWER = "negative, because the parcel was damaged"
REQUEST = {
    "model": "gpt-4o",
    "messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": PROMPT}],
}


def _event(**overrides) -> Event:
    fields = dict(
        ts=TS, request_id="req-1", org_id="acme", mode="base_url", endpoint="/chat/completions",
        provider="openai", provider_unknown=False, model_requested="gpt-4o", model_actual="gpt-4o",
        rule_id=None, rule_name=None, route_skip_reason=None, passthrough_reason=None,
        feature="support-bot", task="classification", streaming=False, status_code=200, error_category=None,
        latency_ms=120.0, ttfb_ms=40.0, request_bytes=321, response_bytes=654,
        request_body=json.dumps(REQUEST).encode(),
    )  # fmt: skip
    fields.update(overrides)
    return Event(**fields)


def _json_response(usage: dict | None) -> bytes:
    body = {"choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER}}]}
    if usage is not None:
        body["usage"] = usage
    return json.dumps(body).encode()


def _stream(usage: dict | None = None) -> bytes:
    chunks = [{"choices": [{"delta": {"content": w}}]} for w in ("negative, ", "because the parcel ", "was damaged")]
    if usage is not None:
        chunks.append({"choices": [], "usage": usage})
    return b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


def _counted() -> tuple[int, int]:
    """tiktoken's count of REQUEST and ANSWER, as the tokeniser fallback should compute it."""
    return estimate.prompt_tokens(REQUEST, "openai", "gpt-4o"), tokens.count_text(ANSWER, "gpt-4o")


def test_non_streaming_usage_from_the_provider():
    usage = {"prompt_tokens": 1000, "completion_tokens": 500, "prompt_tokens_details": {"cached_tokens": 200}}
    row = Meter().row(_event(response_body=_json_response(usage)))
    assert row["token_source"] == "provider"
    assert (row["prompt_tokens"], row["completion_tokens"], row["cached_tokens"]) == (1000, 500, 200)
    ts = datetime.fromtimestamp(TS, timezone.utc).replace(tzinfo=None)
    assert row["ts"] == ts
    assert row["cost_usd"] == pytest.approx(pricing.cost_usd("openai", "gpt-4o", Usage(1000, 500, 200), ts))
    assert row["cost_usd"] == pytest.approx(800 * 2.5 / 1e6 + 200 * 1.25 / 1e6 + 500 * 10 / 1e6)
    assert row["price_known"] is True
    assert (row["request_id"], row["org_id"], row["feature"], row["latency_ms"]) == (
        "req-1",
        "acme",
        "support-bot",
        120.0,
    )


def test_stream_without_usage_is_counted_by_the_tokeniser():
    row = Meter().row(_event(streaming=True, response_body=_stream()))
    prompt, completion = _counted()
    assert row["token_source"] == "tokeniser"
    assert (row["prompt_tokens"], row["completion_tokens"], row["cached_tokens"]) == (prompt, completion, None)
    assert row["cost_usd"] == pytest.approx(prompt * 2.5 / 1e6 + completion * 10 / 1e6)


def test_stream_with_usage_is_the_providers():
    row = Meter().row(_event(streaming=True, response_body=_stream({"prompt_tokens": 70, "completion_tokens": 9})))
    assert (row["token_source"], row["prompt_tokens"], row["completion_tokens"]) == ("provider", 70, 9)


def test_calibrated_after_min_samples_of_provider_usage():
    prompt, completion = _counted()
    meter = Meter(Calibrator(min_samples=2))
    reported = {"prompt_tokens": 2 * prompt, "completion_tokens": 3 * completion}
    for _ in range(2):
        assert meter.row(_event(streaming=True, response_body=_stream(reported)))["token_source"] == "provider"
    assert meter.calibrator.samples("gpt-4o") == 2
    row = meter.row(_event(streaming=True, response_body=_stream()))
    assert row["token_source"] == "calibrated"
    assert (row["prompt_tokens"], row["completion_tokens"]) == (2 * prompt, 3 * completion)


def test_calibrated_from_calibrator_directly():
    prompt, completion = _counted()
    calibrator = Calibrator(min_samples=1)
    calibrator.add("gpt-4o", 150, 100, 50, 100)
    row = Meter(calibrator).row(_event(streaming=True, response_body=_stream()))
    assert row["token_source"] == "calibrated"
    assert (row["prompt_tokens"], row["completion_tokens"]) == (round(prompt * 1.5), round(completion * 0.5))


def test_other_models_are_not_calibrated_by_this_one():
    calibrator = Calibrator(min_samples=1)
    calibrator.add("gpt-4.1", 150, 100, 50, 100)
    assert Meter(calibrator).row(_event(streaming=True, response_body=_stream()))["token_source"] == "tokeniser"


@pytest.mark.parametrize("streaming", [True, False])
def test_error_without_usage_has_no_tokens_and_no_cost(streaming):
    body = b'{"error": {"message": "rate limited"}}'
    row = Meter().row(_event(streaming=streaming, status_code=429, error_category="rate_limit", response_body=body))
    assert [row[k] for k in ("prompt_tokens", "completion_tokens", "token_source", "cost_usd")] == [None] * 4
    assert row["error_category"] == "rate_limit"


def test_unknown_model_has_tokens_but_no_cost():
    event = _event(
        model_actual="no-such-model-xyz",
        response_body=_json_response({"prompt_tokens": 10, "completion_tokens": 5}),
    )
    row = Meter().row(event)
    assert (row["prompt_tokens"], row["completion_tokens"]) == (10, 5)
    assert row["cost_usd"] is None
    assert row["price_known"] is False


def test_gzip_response_is_decoded():
    body = gzip.compress(_json_response({"prompt_tokens": 33, "completion_tokens": 4}))
    row = Meter().row(_event(response_body=body, response_encoding="gzip"))
    assert (row["token_source"], row["prompt_tokens"], row["completion_tokens"]) == ("provider", 33, 4)


def test_gzip_request_is_decoded_for_counting():
    event = _event(
        streaming=True,
        response_body=gzip.compress(_stream()),
        response_encoding="gzip",
        request_body=gzip.compress(json.dumps(REQUEST).encode()),
        request_encoding="gzip",
    )
    row = Meter().row(event)
    assert (row["token_source"], row["prompt_tokens"], row["completion_tokens"]) == ("tokeniser", *_counted())


def test_row_never_contains_the_bodies():
    for event in (
        _event(response_body=_json_response({"prompt_tokens": 1, "completion_tokens": 1})),
        _event(streaming=True, response_body=_stream()),
    ):
        row = Meter().row(event)
        assert not {"request_body", "response_body"} & set(row)
        for value in row.values():
            text = str(value)
            assert PROMPT not in text and ANSWER not in text and "Be terse." not in text


@pytest.mark.parametrize(
    "task, valid", [("classification", True), ("Extraction", True), ("vibes", False), (None, None)]
)
def test_task_valid_column(task, valid):
    row = Meter().row(_event(task=task, response_body=_json_response({"prompt_tokens": 1, "completion_tokens": 1})))
    assert row["task"] == task
    assert row["task_valid"] is valid


# --- prices: their source, the request's time, and errors that never lose a row ----------------


def test_the_row_says_where_its_price_came_from():
    priced = Meter().row(_event(response_body=_json_response({"prompt_tokens": 10, "completion_tokens": 5})))
    assert (priced["price_known"], priced["price_source"]) == (True, "bundled") and priced["cost_usd"] > 0
    unpriced = Meter().row(
        _event(
            model_actual="no-such-model-xyz",
            response_body=_json_response({"prompt_tokens": 10, "completion_tokens": 5}),
        )
    )
    assert (unpriced["cost_usd"], unpriced["price_known"], unpriced["price_source"]) == (None, False, None)


def test_pricing_gets_the_time_of_the_request_in_utc(monkeypatch):
    seen = []
    real = pricing.price
    monkeypatch.setattr(pricing, "price", lambda *args: seen.append(args[3]) or real(*args))
    row = Meter().row(_event(response_body=_json_response({"prompt_tokens": 10, "completion_tokens": 5})))
    assert seen == [datetime.fromtimestamp(TS, timezone.utc)] and seen[0].utcoffset() == timedelta(0)
    assert row["ts"] == seen[0].replace(tzinfo=None)  # stored naive, in UTC, as every other timestamp


def test_deepseek_off_peak_prices_apply_by_the_time_of_the_request():
    """The bug this replaced: a naive timestamp met genai-prices' time-of-day prices and raised TypeError."""
    usage = {"prompt_tokens": 1000, "completion_tokens": 500}
    peak, off_peak = (
        Meter().row(
            _event(provider="deepseek", model_actual="deepseek-chat", ts=ts, response_body=_json_response(usage))
        )
        for ts in (
            datetime(2026, 3, 2, 3, tzinfo=timezone.utc).timestamp(),
            datetime(2026, 3, 2, 17, tzinfo=timezone.utc).timestamp(),
        )
    )
    assert peak["price_source"] == off_peak["price_source"] == "bundled"
    assert off_peak["cost_usd"] < peak["cost_usd"]


def _broken_pricing(*args):
    raise TypeError("can't compare offset-naive and offset-aware times")


def test_a_pricing_error_stores_the_row_unpriced_and_is_counted_and_logged_once(monkeypatch, caplog):
    monkeypatch.setattr(pricing, "price", _broken_pricing)
    meter = Meter()
    usage = {"prompt_tokens": 10, "completion_tokens": 5}
    rows = [meter.row(_event(request_id=f"r{i}", response_body=_json_response(usage))) for i in range(3)]
    assert [(r["request_id"], r["prompt_tokens"], r["cost_usd"], r["price_source"]) for r in rows] == [
        (f"r{i}", 10, None, None) for i in range(3)
    ]
    assert rows[0]["price_known"] is True  # the model has a price: working it out failed
    assert meter.degraded == {"pricing_error": 3}
    assert caplog.text.count("could not price a response of model 'gpt-4o'") == 1
    assert "TypeError" in caplog.text and "stored without a cost and counted as 'pricing_error'" in caplog.text


def test_a_counting_error_stores_the_row_uncounted(monkeypatch, caplog):
    def broken(*args):
        raise KeyError("choices")

    monkeypatch.setattr(usage_module, "from_response", broken)
    meter = Meter()
    row = meter.row(_event(response_body=_json_response({"prompt_tokens": 10, "completion_tokens": 5})))
    assert (row["request_id"], row["prompt_tokens"], row["token_source"], row["cost_usd"]) == (
        "req-1",
        None,
        None,
        None,
    )
    assert meter.degraded == {"counting_error": 1} and "could not count a response of model 'gpt-4o'" in caplog.text


def test_the_writer_stores_rows_it_could_not_price_and_counts_them(tmp_path, monkeypatch):
    monkeypatch.setattr(pricing, "price", _broken_pricing)
    db = tmp_path / "lectr.duckdb"
    writer = Writer(str(db), EventQueue(10, 10))
    for i in range(2):
        writer.queue.offer(
            _event(request_id=f"r{i}", response_body=_json_response({"prompt_tokens": 3, "completion_tokens": 1}))
        )
    assert writer.flush()
    with duckdb.connect(str(db), read_only=True) as con:
        stored = con.execute("SELECT request_id, prompt_tokens, cost_usd FROM request_logs ORDER BY 1").fetchall()
        reasons = dict(con.execute("SELECT reason, sum(events) FROM dropped_events GROUP BY 1").fetchall())
    assert stored == [("r0", 3, None), ("r1", 3, None)]
    assert reasons.get("pricing_error") == 2 and not reasons.get("db_unavailable")


def _known_models() -> list[tuple[str, str]]:
    """Every provider and model in genai-prices' data, under Lectr's name for the provider where it has one."""
    lectr_names = {v: k for k, v in pricing._PROVIDER_IDS.items()}
    return [(lectr_names.get(p.id, p.id), m.id) for p in get_snapshot().providers for m in p.models]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    model=st.sampled_from(_known_models()),
    prompt=st.integers(0, 2_000_000),
    completion=st.integers(0, 200_000),
    cached=st.none() | st.integers(0, 2_000_000),
    ts=st.floats(0, 4_102_444_800),  # 1970 to 2100
    streaming=st.booleans(),
)
def test_metering_never_raises_on_a_model_the_price_data_knows(model, prompt, completion, cached, ts, streaming):
    provider, name = model
    reported = {"prompt_tokens": prompt, "completion_tokens": completion}
    if cached is not None:
        reported["prompt_tokens_details"] = {"cached_tokens": min(cached, prompt)}
    body = _stream(reported) if streaming else _json_response(reported)
    meter = Meter()
    row = meter.row(_event(provider=provider, model_actual=name, ts=ts, streaming=streaming, response_body=body))
    assert meter.degraded == {}
    assert (row["cost_usd"] is None) == (row["price_source"] is None)
    assert row["cost_usd"] is None or (row["cost_usd"] >= 0 and row["price_source"] == "bundled")
    direct = pricing.price(provider, name, Usage(prompt, completion, cached and min(cached, prompt)))
    assert direct is None or direct.usd >= 0


def test_an_event_metering_cannot_handle_at_all_is_counted_as_a_metering_error(tmp_path, monkeypatch):
    def broken(self, event):
        raise RuntimeError("a bug")

    monkeypatch.setattr(Meter, "row", broken)
    db = tmp_path / "lectr.duckdb"
    writer = Writer(str(db), EventQueue(10, 10))
    writer.queue.offer(_event())
    assert writer.flush()
    with duckdb.connect(str(db), read_only=True) as con:
        reasons = dict(con.execute("SELECT reason, sum(events) FROM dropped_events GROUP BY 1").fetchall())
    assert reasons.get("metering_error") == 1 and not reasons.get("db_unavailable")  # not the database's fault


def test_azure_is_priced_by_the_model_its_response_names_not_the_deployment():
    # As Azure answers a deployment called "prod-chat": the body names the model it serves.
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "gpt-4.1-mini-2025-04-14",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 30, "completion_tokens": 9, "total_tokens": 39},
    }
    event = _event(
        provider="azure", model_requested=None, model_actual="prod-chat", response_body=json.dumps(body).encode()
    )
    row = Meter().row(event)
    assert row["model_actual"] == "gpt-4.1-mini-2025-04-14" and row["price_known"] is True
    assert row["cost_usd"] == pytest.approx(pricing.cost_usd("azure", "gpt-4.1-mini-2025-04-14", Usage(30, 9)))


def test_only_azure_rows_take_the_model_from_the_response():
    body = {"model": "gpt-4o-2024-08-06", "choices": [], "usage": {"prompt_tokens": 30, "completion_tokens": 9}}
    row = Meter().row(_event(response_body=json.dumps(body).encode()))
    assert row["model_actual"] == "gpt-4o"  # OpenAI's dated snapshot would split one model into many


def test_a_stream_that_ended_in_an_error_is_not_estimated():
    stream = (
        b'data: {"choices": [{"index": 0, "delta": {"content": "Hel"}}]}\n\n'
        b'data: {"error": {"message": "The server had an error", "type": "server_error"}}\n\n'
    )
    event = _event(streaming=True, error_category="stream_error", response_body=stream)
    row = Meter().row(event)
    assert row["token_source"] is None and row["cost_usd"] is None
    assert Meter().row(_event(streaming=True, response_body=stream))["token_source"] == "tokeniser"  # as before


def test_count_tokens_and_other_unmetered_endpoints_get_no_tokens_or_cost():
    for endpoint, body in (("/messages/count_tokens", {"input_tokens": 412}), ("/models", {"data": []})):
        row = Meter().row(_event(endpoint=endpoint, response_body=json.dumps(body).encode()))
        assert (row["prompt_tokens"], row["cost_usd"], row["price_known"]) == (None, None, None)


def test_embeddings_are_priced_from_their_usage():
    body = {"object": "list", "data": [], "usage": {"prompt_tokens": 120, "total_tokens": 120}}
    event = _event(
        endpoint="/embeddings", model_actual="text-embedding-3-small", response_body=json.dumps(body).encode()
    )
    row = Meter().row(event)
    assert (row["prompt_tokens"], row["completion_tokens"], row["token_source"]) == (120, 0, "provider")
    assert row["cost_usd"] > 0


def test_reasoning_tokens_are_stored_where_the_provider_gives_them():
    body = {
        "output": [],
        "usage": {"input_tokens": 20, "output_tokens": 300, "output_tokens_details": {"reasoning_tokens": 256}},
    }
    event = _event(endpoint="/responses", model_actual="o4-mini", response_body=json.dumps(body).encode())
    row = Meter().row(event)
    assert (row["completion_tokens"], row["reasoning_tokens"]) == (300, 256)
