"""Recorder in mitmproxy's test context: its options, and the one event each finished flow hands to
its queue (a real EventQueue; the writer process is not started)."""

from __future__ import annotations

import pytest
from mitmproxy import exceptions, http
from mitmproxy.flow import Error
from mitmproxy.test import taddons

from lectr.common.events import EventQueue
from lectr.proxy.addons.recorder import Recorder

from helpers import chat_flow, recorded


@pytest.fixture
def recorder():
    addon = Recorder()
    with taddons.context(addon) as tctx:
        yield tctx, addon


class TestRecorderOptions:
    @pytest.mark.parametrize(
        "option, unit",
        [("lectr_queue_size", "events"), ("lectr_batch_size", "events")],
    )
    def test_a_size_under_one_is_refused_not_clamped(self, recorder, option, unit):
        tctx, addon = recorder
        must = rf"^{option} must be a whole number of {unit} >= 1, got 0: e\.g\. "
        with pytest.raises(exceptions.OptionsError, match=must):
            tctx.configure(addon, **{option: 0})

    def test_a_flush_interval_of_0_means_as_soon_as_possible_and_below_is_refused(self, recorder):
        tctx, addon = recorder
        tctx.configure(addon, lectr_flush_ms=0)
        must = r"^lectr_flush_ms must be a whole number of milliseconds >= 0"
        with pytest.raises(exceptions.OptionsError, match=must):
            tctx.configure(addon, lectr_flush_ms=-1)


class TestRecorder:
    def test_a_finished_flow_is_one_event_in_the_queue(self, recorder):
        _, addon = recorder
        flow = chat_flow({"model": "gpt-4o", "messages": []})
        routed = dict(route_provider="openai", model_requested="gpt-4o", model_actual="gpt-4o-mini", rule_id="to-mini")
        record = recorded(flow, org_id="acme", feature="bot", overhead_s=1e-4, tap_overhead_s=2e-4, **routed)
        flow.response = http.Response.make(200, b'{"usage": {}}', {"content-type": "application/json"})
        addon.response(flow)
        addon.error(flow)  # mitmproxy may report an error after: still one event
        (event,) = addon.queue.take(10)
        assert (event.org_id, event.feature, event.provider, event.rule_id) == ("acme", "bot", "openai", "to-mini")
        assert (event.model_requested, event.model_actual, event.status_code) == ("gpt-4o", "gpt-4o-mini", 200)
        assert event.error_category is None and event.response_body == b'{"usage": {}}'
        assert event.lectr_overhead_us >= 300  # the hooks' and the stream tap's time, and its own
        assert addon.status()["events_emitted"] == 1 and record.emitted

    def test_a_request_cut_short_is_the_clients_abort(self, recorder):
        _, addon = recorder
        flow = chat_flow({})
        record = recorded(flow, org_id="acme")
        flow.request.timestamp_end = None  # the body never arrived whole
        addon.error(flow)
        (event,) = addon.queue.take(10)
        assert (event.status_code, event.error_category) == (None, "client_aborted")
        assert record.client_aborted is False  # internals' fact, not the Recorder's: it only reads

    def test_mitmproxys_answer_to_a_failed_flow_is_the_status_stored(self, recorder):
        _, addon = recorder
        flow = chat_flow({})
        recorded(flow, org_id="acme", error_status=502)  # as internals records it
        flow.error = Error("connection refused")
        addon.error(flow)
        (event,) = addon.queue.take(10)
        assert (event.status_code, event.error_category) == (502, "connection")

    def test_a_full_queue_drops_and_counts(self, recorder):
        _, addon = recorder
        addon.queue = EventQueue(1, 1)
        for _ in range(3):
            flow = chat_flow({})
            recorded(flow)
            flow.response = http.Response.make(200)
            addon.response(flow)
        assert addon.status() == {"events_emitted": 3, "events_queued": 1, "events_dropped": 2, "events_lost": 0}
