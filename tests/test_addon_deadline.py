"""Deadlines on the event loop: each passes once, a cancelled one never, one failure stops no other."""

from __future__ import annotations

import asyncio
import logging

from mitmproxy.test import tflow

from lectr.proxy.addons.deadline import Deadlines


def called(into: list, done: asyncio.Event | None = None):
    def expire(flow) -> None:
        into.append(flow.id)
        if done is not None:
            done.set()

    return expire


class TestDeadlines:
    async def test_a_deadline_that_passes_calls_its_action_once_and_a_cancelled_one_never(self):
        deadlines, fired, done = Deadlines(), [], asyncio.Event()
        cancelled, kept = tflow.tflow(), tflow.tflow()
        deadlines.set(cancelled, 0.01, called(fired))
        deadlines.set(kept, 0.02, called(fired, done))
        assert len(deadlines) == 2
        deadlines.cancel(cancelled)
        await asyncio.wait_for(done.wait(), 5)
        assert fired == [kept.id] and len(deadlines) == 0
        deadlines.clear()

    async def test_a_flow_has_one_deadline_the_last_set(self):
        deadlines, fired, done = Deadlines(), [], asyncio.Event()
        flow = tflow.tflow()
        deadlines.set(flow, 60, called(fired))  # e.g. the upstream's limit, replaced by a shorter one
        deadlines.set(flow, 0.01, called(fired, done))
        await asyncio.wait_for(done.wait(), 5)
        assert fired == [flow.id] and len(deadlines) == 0
        deadlines.clear()

    async def test_an_action_that_fails_stops_no_other_deadline(self, caplog):
        deadlines, fired, done = Deadlines(), [], asyncio.Event()

        def broken(flow) -> None:
            raise RuntimeError("expire blew up")

        deadlines.set(tflow.tflow(), 0.01, broken)
        other = tflow.tflow()
        deadlines.set(other, 0.01, called(fired, done))
        with caplog.at_level(logging.ERROR):
            await asyncio.wait_for(done.wait(), 5)
        assert fired == [other.id] and "a deadline's action failed" in caplog.text
        deadlines.clear()

    async def test_clear_forgets_every_deadline_and_stops_looking(self):
        deadlines, fired = Deadlines(), []
        deadlines.set(tflow.tflow(), 0.01, called(fired))
        watcher = deadlines._watcher
        deadlines.clear()
        assert len(deadlines) == 0 and deadlines._watcher is None
        await asyncio.gather(watcher, return_exceptions=True)  # it ends, cancelled
        assert watcher.cancelled() and fired == []
