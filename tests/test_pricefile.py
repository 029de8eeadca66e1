"""The user price file: parsing, which entry prices a request, and its reload in the writer."""

from __future__ import annotations

import json
import logging
import os
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from mitmproxy import exceptions
from mitmproxy.test import taddons

from lectr.common.events import Event, EventQueue
from lectr.common.usage import Usage
from lectr.prices import priceupdate, pricing
from lectr.prices.pricefile import PriceFileError, PriceList, UserPrice, load_price_file, parse_prices
from lectr.prices.sources import PRICES_URL, PriceSettings
from lectr.proxy.addons.recorder import Recorder
from lectr.proxy.writerprocess import WriterProcess
from lectr.record.writer import Writer
from lectr.store.duckdb_connection import connect

EXAMPLE = Path(__file__).resolve().parent.parent / "prices.example.yaml"
JAN_2026 = datetime(2026, 6, 1, 12, tzinfo=timezone.utc)
JAN_2027 = datetime(2027, 1, 1, 0, 0, 1, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def bundled_prices_after():
    yield
    pricing.use(None, PriceList())  # a writer in this process changed what prices; the next test starts afresh


def test_the_example_file_is_valid_and_documents_each_kind_of_entry():
    prices = load_price_file(EXAMPLE)
    assert [(e.provider, e.model, e.start) for e in prices.entries] == [
        ("azure", "support-gpt-4o-eu", None),
        ("openai", "ft:gpt-4o-mini-2024-07-18:*", None),
        ("anthropic", "claude-sonnet-4-5", None),
        ("anthropic", "claude-sonnet-4-5", date(2027, 1, 1)),
    ]
    azure = prices.entries[0]
    assert (azure.input, azure.cached_input, azure.output) == (2.5, 1.25, 10.0)


def test_cost_is_per_million_tokens_with_cached_input_at_its_own_price():
    entry = UserPrice("azure", "d", input=2.0, output=8.0, cached_input=0.5)
    # 1000 prompt tokens of which 400 cached, 100 output
    assert entry.cost(Usage(1000, 100, cached=400)) == pytest.approx((600 * 2.0 + 400 * 0.5 + 100 * 8.0) / 1e6)
    without_cached_price = UserPrice("azure", "d", input=2.0, output=8.0)
    assert without_cached_price.cost(Usage(1000, 100, cached=400)) == pytest.approx((1000 * 2.0 + 100 * 8.0) / 1e6)


def test_a_later_from_date_wins_for_later_requests_only():
    prices = load_price_file(EXAMPLE)
    before, after = (
        prices.find("anthropic", "claude-sonnet-4-5", JAN_2026),
        prices.find("anthropic", "claude-sonnet-4-5", JAN_2027),
    )
    assert (before.input, after.input) == (2.70, 2.40)
    assert prices.find("anthropic", "claude-sonnet-4-5", datetime(2026, 12, 31, 23, 59)).input == 2.70  # naive: UTC


def test_before_its_from_date_an_entry_prices_nothing():
    prices = parse_prices("prices:\n  - {provider: openai, model: gpt-4o, input: 1, output: 2, from: 2027-01-01}\n")
    assert prices.find("openai", "gpt-4o", JAN_2026) is None
    assert prices.find("openai", "gpt-4o", JAN_2027).input == 1
    assert prices.knows("openai", "gpt-4o")  # a price is known, from its date on


def test_an_exact_name_wins_over_a_pattern_and_patterns_match_globs():
    prices = parse_prices(
        """
prices:
  - {provider: azure, model: "*", input: 9, output: 9}
  - {provider: azure, model: "eu-gpt-4o", input: 1, output: 1}
  - {provider: openai, model: "ft:gpt-4o-mini:acme:*", input: 0.3, output: 1.2}
"""
    )
    assert prices.find("azure", "eu-gpt-4o", JAN_2026).input == 1
    assert prices.find("azure", "us-gpt-4o", JAN_2026).input == 9
    assert prices.find("openai", "ft:gpt-4o-mini:acme:classifier:abc123", JAN_2026).input == 0.3
    assert prices.find("openai", "ft:gpt-4o-mini:other:x", JAN_2026) is None
    assert prices.find("anthropic", "eu-gpt-4o", JAN_2026) is None  # another provider's entry
    assert prices.find("AZURE", "eu-gpt-4o", JAN_2026).input == 1  # providers case-insensitively


def test_among_equal_entries_the_first_in_the_file_wins():
    prices = parse_prices(
        "prices:\n  - {provider: azure, model: 'eu-*', input: 1, output: 1}\n"
        "  - {provider: azure, model: '*-gpt', input: 2, output: 2}\n"
    )
    assert prices.find("azure", "eu-gpt", JAN_2026).input == 1


@pytest.mark.parametrize(
    "entry, message",
    [
        ("{provider: openai, model: m, input: 1, output: 2, price: 3}", r"#2 \(openai m\).*unknown field .price."),
        ("{provider: vertex, model: m, input: 1, output: 2}", r"price #2 \(vertex m\): provider 'vertex' is unknown"),
        ("{model: m, input: 1, output: 2}", r"price #2: 'provider' is required, one of openai, anthropic"),
        ("{provider: openai, input: 1, output: 2}", r"price #2: 'model' is required"),
        (
            "{provider: openai, model: m, output: 2}",
            r"price #2 \(openai m\): 'input' is required: a number, USD per million tokens",
        ),
        (
            "{provider: openai, model: m, input: '1.5', output: 2}",
            r"'input' must be a number: USD per million tokens, e.g. 2.5 \(got '1.5'\)",
        ),
        ("{provider: openai, model: m, input: -1, output: 2}", r"'input' is -1.*from 0 to"),
        (
            "{provider: openai, model: m, input: 1, output: 2000000}",
            r"'output' is 2000000; it is USD per million tokens, from 0 to 100000",
        ),
        ("{provider: openai, model: m, input: 1, output: 2, cached_input: .nan}", r"'cached_input' must be a number"),
        ("{provider: openai, model: m, input: 1, output: 2, from: 'next week'}", r"'from' must be a date, YYYY-MM-DD"),
        ("{provider: openai, model: gpt-4o, input: 1, output: 2}", r"price #2 .*same provider, model and 'from' as "),
        ("just a string", r"price #2: each price must be a mapping"),
    ],
)
def test_a_bad_entry_is_rejected_naming_it_and_the_problem(entry, message):
    text = f"prices:\n  - {{provider: openai, model: gpt-4o, input: 1, output: 2}}\n  - {entry}\n"
    with pytest.raises(PriceFileError, match=message):
        parse_prices(text, "prices.yaml")


@pytest.mark.parametrize(
    "text, message",
    [
        ("prices: [", "not valid YAML"),
        ("rules: []", "expected a mapping with one key, 'prices:'"),
        ("prices: {provider: openai}", "'prices' must be a list"),
    ],
)
def test_a_bad_document_is_rejected(text, message):
    with pytest.raises(PriceFileError, match=message):
        parse_prices(text)


def test_an_empty_file_has_no_prices():
    assert parse_prices("") == PriceList() and parse_prices("prices:\n") == PriceList()


def test_a_file_that_is_not_utf8_says_so(tmp_path):
    path = tmp_path / "prices.yaml"
    path.write_bytes(b"prices:\n  - {provider: azure, model: caf\xe9, input: 1, output: 1}\n")
    with pytest.raises(PriceFileError, match="not UTF-8 text"):
        load_price_file(path)


# --- in the writer: user prices win, reload on save, a bad save keeps the last good -----------


def _event(request_id: str, provider: str, model: str, ts: float = JAN_2026.timestamp()) -> Event:
    body = json.dumps({"choices": [], "usage": {"prompt_tokens": 1_000_000, "completion_tokens": 100_000}})
    return Event(
        ts=ts, request_id=request_id, org_id="acme", mode="base_url", endpoint="/chat/completions",
        provider=provider, provider_unknown=False, model_requested=model, model_actual=model, rule_id=None,
        rule_name=None, route_skip_reason=None, passthrough_reason=None, feature=None, task=None, streaming=False,
        status_code=200, error_category=None, latency_ms=1.0, ttfb_ms=None, request_bytes=0, response_bytes=0,
        response_body=body.encode(),
    )  # fmt: skip


def _write(writer: Writer, *events: Event) -> None:
    for event in events:
        assert writer.queue.offer(event)
    assert writer.flush()


def _rows(db: Path) -> dict[str, tuple]:
    with connect(db, read_only=True) as con:  # takes turns with a writer thread in this process
        found = con.execute("SELECT request_id, cost_usd, price_known, price_source FROM request_logs").fetchall()
    return {r[0]: r[1:] for r in found}


def _save(path: Path, text: str) -> None:
    """As an editor saves: a new file renamed over the old (so the change is seen within one mtime tick)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def test_the_writer_prices_with_the_user_file_and_reloads_it(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(priceupdate, "RELOAD_SECONDS", 0.0)
    db, path = tmp_path / "lectr.duckdb", tmp_path / "prices.yaml"
    _save(path, "prices:\n  - {provider: azure, model: eu-gpt-4o, input: 2, output: 10}\n")
    writer = Writer(str(db), EventQueue(100, 100), prices=PriceSettings(user_file=str(path)))
    _write(writer, _event("deployment", "azure", "eu-gpt-4o"), _event("unknown", "azure", "us-gpt-4o"))
    # 1M input at $2, 100k output at $10 per million
    assert _rows(db)["deployment"] == (pytest.approx(2 + 1), True, "user")
    assert _rows(db)["unknown"] == (None, False, None)  # no price anywhere: NULL, never 0

    _save(path, "prices:\n  - {provider: azure, model: '*-gpt-4o', input: 4, output: 10}\n")
    _write(writer, _event("after-save", "azure", "us-gpt-4o"))
    assert _rows(db)["after-save"] == (pytest.approx(4 + 1), True, "user")

    caplog.set_level(logging.ERROR)
    _save(path, "prices:\n  - {provider: azure, model: '*-gpt-4o', input: 4, output: 10}\n  - {provider: azure}\n")
    _write(writer, _event("after-bad-save", "azure", "us-gpt-4o"))
    assert _rows(db)["after-bad-save"] == (pytest.approx(4 + 1), True, "user")  # the last good prices
    assert "prices.yaml rejected" in caplog.text and "price #2: 'model' is required" in caplog.text


def test_a_user_price_wins_over_the_database(tmp_path, monkeypatch):
    monkeypatch.setattr(priceupdate, "RELOAD_SECONDS", 0.0)
    db, path = tmp_path / "lectr.duckdb", tmp_path / "prices.yaml"
    _write(Writer(str(db), EventQueue(100, 100)), _event("list-price", "openai", "gpt-4o"))
    assert _rows(db)["list-price"] == (pytest.approx(2.5 + 1), True, "bundled")  # $2.50 in, $10 out

    _save(path, "prices:\n  - {provider: openai, model: gpt-4o, input: 2, output: 8}\n")
    writer = Writer(str(db), EventQueue(100, 100), prices=PriceSettings(user_file=str(path)))
    _write(writer, _event("negotiated", "openai", "gpt-4o"), _event("other", "openai", "gpt-4o-mini"))
    assert _rows(db)["negotiated"] == (pytest.approx(2 + 0.8), True, "user")
    assert _rows(db)["other"][2] == "bundled"


def test_the_writer_process_prices_with_the_file_the_proxy_names(tmp_path):
    """The settings cross into the spawned writer process, where pricing runs."""
    db, path = tmp_path / "lectr.duckdb", tmp_path / "prices.yaml"
    _save(path, "prices:\n  - {provider: azure, model: eu-gpt-4o, input: 2, output: 10}\n")
    queue = EventQueue(100, 100)
    process = WriterProcess(str(db), queue, 0.05, PriceSettings(user_file=str(path)))
    process.start()
    try:
        queue.offer(_event("in-the-child", "azure", "eu-gpt-4o"))
    finally:
        process.stop()
    assert _rows(db)["in-the-child"] == (pytest.approx(3), True, "user")


def test_the_proxy_options_reach_the_writer_and_are_checked():
    recorder = Recorder()
    with taddons.context(recorder) as tctx:
        options = tctx.options
        assert (options.lectr_prices_file, options.lectr_prices_refresh) == ("prices.yaml", 0)  # offline by default
        assert options.lectr_prices_url == PRICES_URL
        with pytest.raises(
            exceptions.OptionsError, match="lectr_prices_refresh must be 0 .never. or a number of hours"
        ):
            tctx.configure(recorder, lectr_prices_refresh=-1)
        with pytest.raises(exceptions.OptionsError, match="must be an http:// or https:// address"):
            tctx.configure(recorder, lectr_prices_url="raw.githubusercontent.com/x.json")
        tctx.configure(recorder, lectr_prices_refresh=24, lectr_prices_url="http://127.0.0.1:1/data.json")
        assert tctx.options.lectr_prices_refresh == 24


def test_through_the_proxy_a_price_file_override_is_the_rows_cost_and_source(simulator_process, tmp_path):
    """Issue 13's done-when, as a user runs it: mitmdump with lectr_prices_file, SDK traffic, the row."""
    import openai

    from helpers import start_lectr, stop, wait_rows

    prices = tmp_path / "prices.yaml"
    prices.write_text("prices:\n  - {provider: openai, model: gpt-4o-mini, input: 1000, output: 2000}\n")
    lectr = start_lectr(tmp_path / "proxy", simulator_process.url, options={"lectr_prices_file": str(prices)})
    try:
        client = openai.OpenAI(
            base_url=f"{lectr.url}/v1", api_key="sk-client", default_headers={"X-Lectr-Key": lectr.key}, max_retries=0
        )
        for model, feature in (("gpt-4o-mini", "priced-by-user"), ("gpt-4o", "priced-by-data")):
            client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "hi"}], extra_headers={"X-Lectr-Feature": feature}
            )
        (user,) = wait_rows(lectr.db_path, 1, "feature = ?", ["priced-by-user"])
        (data,) = wait_rows(lectr.db_path, 1, "feature = ?", ["priced-by-data"])
    finally:
        stop(lectr.proc)
    assert user["price_source"] == "user" and user["token_source"] == "provider"
    expected = (user["prompt_tokens"] * 1000 + user["completion_tokens"] * 2000) / 1_000_000
    assert user["cost_usd"] == pytest.approx(expected)
    bundled = pricing.cost_usd("openai", "gpt-4o", Usage(data["prompt_tokens"], data["completion_tokens"]))
    assert data["price_source"] == "bundled" and data["cost_usd"] == pytest.approx(bundled)
