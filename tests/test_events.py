"""The event's derived fields (task validity, error category) and the never-blocking event queue."""

import pytest

from lectr.common.events import Event, EventQueue, error_category, task_valid


def _event(n: int) -> Event:
    return Event(
        ts=float(n), request_id=f"r{n}", org_id="acme", mode="base_url", endpoint="/chat/completions",
        provider="openai", provider_unknown=False, model_requested="gpt-4o", model_actual="gpt-4o",
        rule_id=None, rule_name=None, route_skip_reason=None, passthrough_reason=None, feature=None, task=None,
        streaming=False, status_code=200, error_category=None, latency_ms=1.0, ttfb_ms=None,
        request_bytes=0, response_bytes=0,
    )  # fmt: skip


def test_task_valid():
    assert task_valid(None) is None
    assert task_valid("classification") is True
    assert task_valid("Summarisation") is True
    assert task_valid("REASONING") is True
    assert task_valid("summarization") is False  # the US spelling is not one of the five
    assert task_valid("") is False


@pytest.mark.parametrize(
    "status, lectr_error, flow_error, client_aborted, timed_out, expected",
    [
        (200, False, False, False, False, None),
        (None, False, False, False, False, None),
        (401, False, False, False, False, "auth"),
        (403, False, False, False, False, "auth"),
        (401, True, False, False, False, "auth"),
        (429, False, False, False, False, "rate_limit"),
        (429, True, False, False, False, "auth"),  # Lectr's own: too many invalid Lectr keys
        (400, False, False, False, False, "client"),
        (404, False, False, False, False, "client"),
        (500, False, False, False, False, "upstream_5xx"),
        (502, False, False, False, False, "upstream_5xx"),
        (503, False, False, False, False, "upstream_5xx"),
        (502, True, False, False, False, "connection"),
        (504, True, False, False, False, "timeout"),
        (500, True, False, False, False, "proxy"),
        (400, True, False, False, False, "client"),
        (None, False, True, False, False, "connection"),
        (200, False, False, True, False, "client_aborted"),
        (None, False, True, True, True, "client_aborted"),
        (None, False, True, False, True, "timeout"),
    ],
)
def test_error_category(status, lectr_error, flow_error, client_aborted, timed_out, expected):
    assert error_category(status, lectr_error, flow_error, client_aborted, timed_out) == expected


def test_offer_drops_and_counts_when_full():
    q = EventQueue(maxsize=3, batch_size=100)
    assert [q.offer(_event(i)) for i in range(5)] == [True, True, True, False, False]
    assert len(q) == 3
    assert q.dropped == 2
    assert [e.request_id for e in q.take(10)] == ["r0", "r1", "r2"]
    assert q.offer(_event(9))  # room again
    assert q.dropped == 2


def test_ready_is_set_when_a_batch_is_waiting():
    q = EventQueue(maxsize=10, batch_size=3)
    q.offer(_event(0))
    q.offer(_event(1))
    assert not q.ready.is_set()
    q.offer(_event(2))
    assert q.ready.is_set()


def test_take_is_fifo_up_to_n():
    q = EventQueue(maxsize=10, batch_size=10)
    for i in range(5):
        q.offer(_event(i))
    assert [e.request_id for e in q.take(2)] == ["r0", "r1"]
    assert [e.request_id for e in q.take(10)] == ["r2", "r3", "r4"]
    assert q.take(10) == []
    assert len(q) == 0
