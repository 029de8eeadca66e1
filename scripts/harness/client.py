"""The benchmarks' load client: a minimal keep-alive HTTP/1.1 client, cheaper per request than an SDK,
so that the load generator is not what is measured; its `Reply` keeps when each piece arrived."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class Reply:
    status: int
    t_sent: float
    t_headers: float
    t_done: float
    chunks: list[tuple[float, int]] = field(default_factory=list)  # (arrival, SSE data events in it)

    @property
    def ms(self) -> float:
        return (self.t_done - self.t_sent) * 1000

    def first_event_ms(self) -> float | None:
        return next(((t - self.t_sent) * 1000 for t, n in self.chunks if n), None)

    def event_times(self) -> list[float]:
        return [t for t, n in self.chunks for _ in range(n)]


class Conn:
    """A minimal keep-alive HTTP/1.1 client: cheaper per request than an SDK, so that the load
    generator is not what is measured. `send(request, on_chunk)` hands each piece of the body to
    `on_chunk(arrival, data)` as it arrives instead of counting its SSE events into the Reply."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def send(self, request: bytes, on_chunk: Callable[[float, bytes], None] | None = None) -> Reply:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        reader = self.reader
        t_sent = time.perf_counter()
        self.writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        reply = Reply(int(head[9:12]), t_sent, time.perf_counter(), 0.0)
        headers = {}
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip().lower()

        def arrived(data: bytes) -> None:
            now = time.perf_counter()
            if on_chunk is None:
                reply.chunks.append((now, data.count(b"data:")))
            else:
                on_chunk(now, data)

        if headers.get(b"transfer-encoding") == b"chunked":
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    break
                arrived((await reader.readexactly(size + 2))[:-2])
        elif b"content-length" in headers:
            arrived(await reader.readexactly(int(headers[b"content-length"])))
        else:
            arrived(await reader.read())
            headers[b"connection"] = b"close"
        reply.t_done = time.perf_counter()
        if headers.get(b"connection") == b"close":
            self.close()
        return reply

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def raw_request(path: str, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def sequential(port: int, request: bytes, n: int) -> list[Reply]:
    """n requests one after the other on one keep-alive connection."""
    conn = Conn(port)
    try:
        return [await conn.send(request) for _ in range(n)]
    finally:
        conn.close()


async def back_to_back(
    port: int, request: bytes, concurrency: int, seconds: float | None = None, requests: int | None = None
) -> tuple[int, float]:
    """`concurrency` callers, each on its own connection, sending back to back until `seconds` have
    passed or `requests` were sent; returns (requests sent, seconds it took). An answer other than 200 is an error."""
    done = 0
    deadline = time.perf_counter() + seconds if seconds else None

    async def caller() -> None:
        nonlocal done
        conn = Conn(port)
        try:
            while (deadline is None or time.perf_counter() < deadline) and (requests is None or done < requests):
                done += 1
                reply = await conn.send(request)
                if reply.status != 200:
                    raise RuntimeError(f"127.0.0.1:{port}: HTTP {reply.status}")
        finally:
            conn.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return done, time.perf_counter() - t0
