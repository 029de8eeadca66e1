"""The soak's traffic (scripts/soak.py): mixed requests through the official SDKs in base_url mode,
open loop, and what the clients sent and saw of them.

OpenAI and Anthropic, streaming and not, in turn, with features and tasks that vary; two rules
route some of them to other models, which the stored rows must show.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field

import anthropic
import httpx2
import openai

ORG = "soak"
KINDS = ("openai", "openai-stream", "anthropic", "anthropic-stream")
# feature -> task; None: no X-Lectr-Feature (nor task) header.
FEATURES = {
    "support-bot": None,
    "classify-ticket": "classification",
    "summary": "summarisation",
    "extract-invoice": "extraction",
    "chat": "generation",
    "planner": "reasoning",
    None: None,
}
OPENAI_MODEL, ANTHROPIC_MODEL = "gpt-4o", "claude-sonnet-4-5"
# What the rules below turn them into, for these features.
ROUTED = {("classify-ticket", OPENAI_MODEL): "gpt-4o-mini", ("summary", ANTHROPIC_MODEL): "claude-haiku-4-5"}
RULES = f"""\
rules:
  - name: Ticket classifier to mini
    priority: 1
    match: {{feature: classify-ticket, provider: openai, model: {OPENAI_MODEL}}}
    target: {{model: gpt-4o-mini}}
  - name: Summaries to Haiku
    priority: 2
    match: {{feature: summary, provider: anthropic, model: {ANTHROPIC_MODEL}}}
    target: {{model: claude-haiku-4-5}}
"""
MESSAGES = [
    {"role": "system", "content": "You are a support assistant. Answer in one short paragraph."},
    {"role": "user", "content": "My parcel was due on Monday and has not arrived. Is this billing or shipping?"},
]


@dataclass
class Tally:
    """What the clients sent and saw."""

    sent: int = 0
    ok: int = 0
    errors: Counter = field(default_factory=Counter)  # "kind: exception: message" -> count
    latency_ms: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    first_chunk_ms: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS if "stream" in k})
    lag_ms: list[float] = field(default_factory=list)  # how late each request left against its slot
    expected: Counter = field(default_factory=Counter)  # (feature, streaming, model_actual) -> requests
    by_kind: Counter = field(default_factory=Counter)
    in_flight: int = 0
    max_in_flight: int = 0
    warmup: int = 0  # the first requests, one of each kind, sent before the clock starts
    t_start: float = 0.0  # time.monotonic() when the timed traffic began


def request_plan(i: int, rng: random.Random) -> tuple[str, str | None, str | None, bool]:
    """The i-th request: kind (in turn), feature and task (random), and whether to ask for stream usage."""
    kind = KINDS[i % len(KINDS)]
    feature = rng.choice(list(FEATURES))
    return kind, feature, FEATURES[feature], (i // len(KINDS)) % 2 == 0


async def one_request(clients: dict, i: int, rng: random.Random, chunks: int, tally: Tally, timed=True) -> None:
    kind, feature, task, include_usage = request_plan(i, rng)
    tally.sent += 1
    headers = {}
    if feature:
        headers["X-Lectr-Feature"] = feature
    if task:
        headers["X-Lectr-Task"] = task
    model = ANTHROPIC_MODEL if kind.startswith("anthropic") else OPENAI_MODEL
    streaming = kind.endswith("stream")
    tally.expected[(feature, streaming, ROUTED.get((feature, model), model))] += 1
    tally.by_kind[kind] += 1
    tally.in_flight += 1
    tally.max_in_flight = max(tally.max_in_flight, tally.in_flight)
    t0 = time.perf_counter()
    first = None
    try:
        if kind == "openai":
            reply = await clients["openai"].chat.completions.create(
                model=model, messages=MESSAGES, max_tokens=64, extra_headers=headers
            )
            check(reply.choices[0].message.content and reply.usage.completion_tokens == chunks, "incomplete reply")
        elif kind == "openai-stream":
            extra = {"stream_options": {"include_usage": True}} if include_usage else {}
            stream = await clients["openai"].chat.completions.create(
                model=model, messages=MESSAGES, max_tokens=64, stream=True, extra_headers=headers, **extra
            )
            parts, usage = 0, None
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    first = first or time.perf_counter()
                    parts += 1
                usage = chunk.usage or usage
            check(parts == chunks, f"stream of {parts} chunks, not {chunks}")
            check(not include_usage or (usage and usage.completion_tokens == chunks), "no usage in the stream")
        elif kind == "anthropic":
            reply = await clients["anthropic"].messages.create(
                model=model, max_tokens=64, messages=MESSAGES[1:], system=MESSAGES[0]["content"], extra_headers=headers
            )
            check(reply.content[0].text and reply.usage.output_tokens == chunks, "incomplete reply")
        else:
            parts = 0
            async with clients["anthropic"].messages.stream(
                model=model, max_tokens=64, messages=MESSAGES[1:], system=MESSAGES[0]["content"], extra_headers=headers
            ) as stream:
                async for text in stream.text_stream:
                    if text:
                        first = first or time.perf_counter()
                        parts += 1
                final = await stream.get_final_message()
            check(parts == chunks and final.usage.output_tokens == chunks, f"stream of {parts} chunks, not {chunks}")
    except Exception as e:  # every failure is counted and reported, by kind and message
        tally.errors[f"{kind}: {type(e).__name__}: {str(e)[:160]}"] += 1
    else:
        tally.ok += 1
        if not timed:
            return
        tally.latency_ms[kind].append((time.perf_counter() - t0) * 1000)
        if first is not None:
            tally.first_chunk_ms[kind].append((first - t0) * 1000)
    finally:
        tally.in_flight -= 1


def check(condition, message: str) -> None:
    if not condition:
        raise AssertionError(message)


async def traffic(url: str, key: str, args: argparse.Namespace, tally: Tally) -> float:
    """Open loop: request i leaves at start + i / rate; returns the seconds the sending took."""
    # Idle connections are closed after 4 s, before the simulator (uvicorn) closes its end after 5 s:
    # with equal timers (httpx's default is also 5 s) a request sent on a connection at 4.99 s
    # reaches the simulator as it closes, and Lectr answers 502 (it does not retry a POST). Real
    # providers keep idle connections far longer than SDKs do.
    # The SDKs are built on httpx2 (anthropic 2 refuses an httpx client): their own client class.
    limits = httpx2.Limits(
        max_connections=args.concurrency, max_keepalive_connections=args.concurrency, keepalive_expiry=4.0
    )
    common = {"default_headers": {"X-Lectr-Key": key}, "max_retries": 0, "timeout": 30.0}
    clients = {
        "openai": openai.AsyncOpenAI(
            base_url=f"{url}/v1",
            api_key="sk-soak-client",
            http_client=openai.DefaultAsyncHttpxClient(limits=limits),
            **common,
        ),
        "anthropic": anthropic.AsyncAnthropic(
            base_url=url,
            api_key="sk-ant-soak-client",
            http_client=anthropic.DefaultAsyncHttpxClient(limits=limits),
            **common,
        ),
    }
    rng = random.Random(args.seed)
    room = asyncio.Semaphore(args.concurrency)
    tasks: set[asyncio.Task] = set()
    loop = asyncio.get_running_loop()
    try:
        # One request of each kind first, one at a time: the SDKs' first calls build their types
        # and would hold the event loop (and so the sending) for about a second. Counted as sent.
        for i in range(len(KINDS)):
            await one_request(clients, i, rng, args.chunks, tally, timed=False)
        tally.warmup = tally.sent
        tally.t_start = time.monotonic()
        start = loop.time()
        # A request due before the end leaves even if late; a client this far behind stops sending.
        give_up = start + args.duration + max(1.0, args.duration / 10)
        for i in range(len(KINDS), len(KINDS) + int(args.rate * args.duration)):
            due = start + (i - len(KINDS)) / args.rate
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
            await room.acquire()
            if loop.time() >= give_up:  # the rate check says so
                room.release()
                break
            tally.lag_ms.append((loop.time() - due) * 1000)
            task = asyncio.create_task(one_request(clients, i, rng, args.chunks, tally))
            task.add_done_callback(lambda t: (tasks.discard(t), room.release()))
            tasks.add(task)
        sending = loop.time() - start + 1 / args.rate  # the last request's slot included
        if tasks:
            _, unfinished = await asyncio.wait(tasks, timeout=60)
            if unfinished:
                tally.errors["no answer within 60 s of the end of the traffic"] += len(unfinished)
        return sending
    finally:
        for task in tasks:
            task.cancel()
        for client in clients.values():
            await client.close()
