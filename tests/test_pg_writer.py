"""The writer on a real PostgreSQL server: a batch whose commit was made but never heard is stored once,
and a server that goes away delays rows, then drops and counts what does not fit, and the counts land
when it is back.

The `Writer` is driven by hand, as tests/test_metering.py and test_jobs.py drive it, against a PgStore:
the test calls its flush(), with no thread of its own, so what it drops does not depend on when a
thread runs.
The lost confirmation is real: a relay between the writer and the server passes the batch's COMMIT
on and withholds the server's answer, then cuts the connection, as a failover or a network break at
that moment would.
"""

from __future__ import annotations

import logging
import socket
import threading
import time

import psycopg
import pytest

from lectr.common.events import Event, EventQueue
from lectr.record.writer import Writer
from lectr.store import pg_connection

from helpers import wait_until

pytestmark = pytest.mark.slow  # starts PostgreSQL

# psycopg ends a transaction with COMMIT as a simple query: 'Q', its length (4 + 7), the text.
COMMIT = b"Q\x00\x00\x00\x0bCOMMIT\x00"


def _event(request_id: str) -> Event:
    return Event(
        ts=time.time(), request_id=request_id, org_id="acme", mode="base_url", endpoint="/chat/completions",
        provider="openai", provider_unknown=False, model_requested="gpt-4o", model_actual="gpt-4o",
        rule_id=None, rule_name=None, route_skip_reason=None, passthrough_reason=None, feature="pg", task=None,
        streaming=False, status_code=200, error_category=None, latency_ms=10.0, ttfb_ms=None,
        request_bytes=0, response_bytes=0,
    )  # fmt: skip


def _offer(queue: EventQueue, prefix: str, n: int) -> None:
    for i in range(n):
        queue.offer(_event(f"{prefix}-{i}"))


def _stored(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        try:
            return [r[0] for r in conn.execute("SELECT request_id FROM request_logs")]
        except psycopg.errors.UndefinedTable:  # the writer has not migrated the database yet
            return []


def _dropped(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return dict(conn.execute("SELECT reason, sum(events)::int FROM dropped_events GROUP BY 1").fetchall())


class CommitCutter:
    """A TCP relay to the server at `port`. Once `armed`, it passes the next COMMIT on, and when the
    server answers it, cuts the connection without passing the answer on: the commit is made, and the
    client never hears of it."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.armed = threading.Event()
        self.cut = threading.Event()  # set once a commit's answer was withheld
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            committing = threading.Event()  # this connection sent the armed COMMIT
            for src, dst, up in ((client, server, True), (server, client, False)):
                threading.Thread(target=self._pump, args=(src, dst, up, committing), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, up: bool, committing: threading.Event) -> None:
        try:
            while data := src.recv(65536):
                if up and self.armed.is_set() and COMMIT in data:
                    self.armed.clear()
                    committing.set()
                elif not up and committing.is_set():
                    self.cut.set()  # the server's answer to the COMMIT: withheld
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


def test_a_batch_whose_commit_was_made_but_not_heard_is_sent_again_and_stored_once(postgres_server, pg_url, caplog):
    cutter = CommitCutter(postgres_server.port)
    relayed = pg_url.replace(f":{postgres_server.port}/", f":{cutter.port}/")
    writer = Writer(relayed, EventQueue(100, 10))
    try:
        _offer(writer.queue, "first", 1)
        assert writer.flush()  # the schema migrated, through the relay, and a first batch
        _offer(writer.queue, "cut", 5)
        writer.dropped_upstream = {"queue_full": 4}  # the proxy's drops travel with the batch
        cutter.armed.set()
        with caplog.at_level(logging.INFO, logger="lectr"):
            assert not writer.flush()  # the server committed; the writer heard nothing
            assert cutter.cut.is_set()
            assert sorted(_stored(pg_url)) == ["cut-0", "cut-1", "cut-2", "cut-3", "cut-4", "first-0"]
            _offer(writer.queue, "later", 2)  # arrives meanwhile: the next batch's, not this one's
            wait_until(lambda: writer.flush(), timeout=10, what="the retry to succeed")
            assert "was stored before its commit was lost; not storing it twice" in caplog.text
            assert writer.flush()  # the next batch
    finally:
        pg_connection.close(relayed)  # its pool (pg_url's fixture closes pg_url's): not left reconnecting to the relay
        cutter.close()
    stored = _stored(pg_url)
    assert sorted(stored) == ["cut-0", "cut-1", "cut-2", "cut-3", "cut-4", "first-0", "later-0", "later-1"]
    assert _dropped(pg_url) == {"queue_full": 4} and writer.written == 8
    assert postgres_server.password not in caplog.text


def test_a_server_down_delays_rows_then_drops_and_counts_them_and_the_counts_land_when_it_is_back(
    own_postgres, own_pg_url, monkeypatch, caplog
):
    # A shorter wait per attempt than Lectr's 5 s, so the test sees several attempts in seconds.
    monkeypatch.setattr(pg_connection, "CONNECT_TIMEOUT", 1.0)
    caplog.set_level(logging.INFO, logger="lectr.record.writer")
    url = own_pg_url
    queue = EventQueue(maxsize=10, batch_size=5)
    writer = Writer(url, queue)
    _offer(queue, "before", 5)
    assert writer.flush() and sorted(_stored(url)) == [f"before-{i}" for i in range(5)]
    own_postgres.stop()
    try:
        _offer(queue, "during", 3)
        assert not writer.flush()  # a batch of 3, kept for the next attempt
        attempts = lambda: caplog.text.count("cannot write to")  # noqa: E731
        wait_until(lambda: not writer.flush() and attempts() >= 2, timeout=15, what="a second failed attempt")
        assert writer.dropped_unwritable == 0 and queue.dropped == 0  # kept, and retried
        _offer(queue, "overflow", 12)  # the queue takes 10 of them and refuses (and counts) 2
        assert queue.dropped == 2 and len(queue) == 10
        assert not writer.flush()  # no room behind the waiting batch: its 3 events are dropped
        assert writer.dropped_unwritable == 3
        assert "database unavailable and the queue is full: dropping 3 events" in caplog.text
        assert not writer.flush()  # the backlog, one batch of 10 that would fill the queue: dropped too
        assert writer.dropped_unwritable == 13 and len(queue) == 0
        _offer(queue, "after", 3)  # room again: these wait for the server
        assert not writer.flush()
        assert writer.dropped_unwritable == 13 and queue.dropped == 2 and len(queue) == 0
    finally:
        own_postgres.start()
    wait_until(writer.flush, timeout=60, what="the waiting batch to be written")  # after its backoff
    assert writer.flush() and not len(queue)  # nothing left
    assert f"writing to {writer._where} again" in caplog.text
    stored = _stored(url)
    assert sorted(stored) == [f"after-{i}" for i in range(3)] + [f"before-{i}" for i in range(5)]
    assert _dropped(url) == {"db_unavailable": 13, "queue_full": 2} and writer.written == 8
    assert own_postgres.password not in caplog.text
