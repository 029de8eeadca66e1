"""A local simulator of the LLM providers' wire formats, for tests, demos and benchmarks.

    python scripts/simulator.py --port 9000 [--first-token-ms 200] [--chunk-gap-ms 20] [--chunks 20]

Serves, on loopback:
- OpenAI chat completions at /v1/chat/completions, and at Groq's (/openai/v1/...),
  Gemini's (/v1beta/openai/...) and Azure's (/openai/deployments/{d}/...) paths;
- Anthropic messages at /v1/messages;
- /v1/embeddings and GET /v1/models, minimal;
non-streaming and SSE, with realistic `usage` (and OpenAI's `stream_options.include_usage`).

Per request, headers override the command-line defaults:
  X-Sim-Status: 429          answer with this error status and a provider-shaped error body
  X-Sim-First-Token-Ms: 200  wait before the first token (before the headers when not streaming)
  X-Sim-Headers-Delay-Ms: N  wait before sending any response headers at all
  X-Sim-Chunk-Gap-Ms: 20     wait between stream chunks
  X-Sim-Chunks: 20           how many content chunks a stream has
  X-Sim-Stamp: 1             stamp each OpenAI stream chunk with its send time (`"sim_sent":
                             Unix seconds), so that a client can time every chunk's trip
Every request received is recorded: GET /_sim/requests lists them (method, path, query,
headers, body), DELETE /_sim/requests forgets them. Point Lectr at it with
LECTR_OPENAI_BASE_URL=http://127.0.0.1:9000/v1 and LECTR_ANTHROPIC_BASE_URL=http://127.0.0.1:9000, etc.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

WORDS = (
    "Lectr routes each request to the model that fits the task and records what it cost "
    "so that every team can see which feature spends what and where a cheaper model would do"
).split()


@dataclass
class Behaviour:
    status: int = 200
    first_token_ms: float = 0.0
    headers_delay_ms: float = 0.0
    chunk_gap_ms: float = 0.0
    chunks: int = 8
    stamp: bool = False


class Simulator:
    def __init__(self, defaults: Behaviour, record: bool = True) -> None:
        self.defaults = defaults
        self.record = record  # off for long benchmarks: the list would grow without bound
        self.received: list[dict] = []

    def app(self) -> Starlette:
        openai_chat = self.openai_chat
        return Starlette(
            routes=[
                Route("/v1/chat/completions", openai_chat, methods=["POST"]),
                Route("/openai/v1/chat/completions", openai_chat, methods=["POST"]),
                Route("/v1beta/openai/chat/completions", openai_chat, methods=["POST"]),
                Route("/openai/deployments/{deployment}/chat/completions", openai_chat, methods=["POST"]),
                Route("/v1/messages", self.anthropic_messages, methods=["POST"]),
                Route("/v1/embeddings", self.embeddings, methods=["POST"]),
                Route("/v1/models", self.models, methods=["GET"]),
                Route("/_sim/requests", self.requests, methods=["GET", "DELETE"]),
                Route("/_sim/health", lambda r: JSONResponse({"ok": True}), methods=["GET"]),
                Route("/{path:path}", self.not_found, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
            ]
        )

    # --- bookkeeping ------------------------------------------------------------------

    async def _receive(self, request: Request) -> tuple[dict, Behaviour]:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {"_unparsed": raw.decode("utf-8", "replace")}
        if self.record:
            self.received.append(
                {
                    "method": request.method,
                    "path": request.url.path,
                    "query": request.url.query,
                    "headers": dict(request.headers),
                    "body": body,
                    "t": time.time(),
                }
            )
        h = request.headers
        d = self.defaults
        behaviour = Behaviour(
            status=int(h.get("x-sim-status", d.status)),
            first_token_ms=float(h.get("x-sim-first-token-ms", d.first_token_ms)),
            headers_delay_ms=float(h.get("x-sim-headers-delay-ms", d.headers_delay_ms)),
            chunk_gap_ms=float(h.get("x-sim-chunk-gap-ms", d.chunk_gap_ms)),
            chunks=int(h.get("x-sim-chunks", d.chunks)),
            stamp=h.get("x-sim-stamp", "") == "1",
        )
        if behaviour.headers_delay_ms:
            await asyncio.sleep(behaviour.headers_delay_ms / 1000)
        return (body if isinstance(body, dict) else {}), behaviour

    async def requests(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.received.clear()
            return JSONResponse({"cleared": True})
        return JSONResponse(self.received)

    async def not_found(self, request: Request) -> Response:
        await self._receive(request)
        return _openai_error(404, f"Invalid URL ({request.method} {request.url.path})")

    # --- OpenAI -------------------------------------------------------------------------

    async def openai_chat(self, request: Request) -> Response:
        body, b = await self._receive(request)
        if b.status != 200:
            return _openai_error(b.status)
        if not isinstance(body.get("messages"), list):
            return _openai_error(400, "'messages' is a required property")
        model = str(body.get("model") or request.path_params.get("deployment") or "unknown")
        prompt_tokens = _count_prompt(body["messages"])
        words = _answer(b.chunks)
        cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(words),
            "total_tokens": prompt_tokens + len(words),
            "prompt_tokens_details": {"cached_tokens": 0},
        }
        if not body.get("stream"):
            await asyncio.sleep(b.first_token_ms / 1000)
            return JSONResponse(
                {
                    "id": cid,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": "".join(words)},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                }
            )
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(delta: dict, finish: str | None = None, with_usage: bool = False) -> bytes:
            data = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [] if with_usage else [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            if include_usage:
                data["usage"] = usage if with_usage else None
            if b.stamp:
                data["sim_sent"] = time.time()
            return f"data: {json.dumps(data)}\n\n".encode()

        async def events():
            await asyncio.sleep(b.first_token_ms / 1000)
            yield chunk({"role": "assistant", "content": ""})
            for i, word in enumerate(words):
                if i and b.chunk_gap_ms:
                    await asyncio.sleep(b.chunk_gap_ms / 1000)
                yield chunk({"content": word})
            yield chunk({}, "stop")
            if include_usage:
                yield chunk({}, with_usage=True)
            yield b"data: [DONE]\n\n"

        return _sse(events())

    async def embeddings(self, request: Request) -> Response:
        body, b = await self._receive(request)
        if b.status != 200:
            return _openai_error(b.status)
        inputs = body.get("input")
        inputs = inputs if isinstance(inputs, list) else [inputs]
        tokens = sum(len(str(i).split()) for i in inputs)
        return JSONResponse(
            {
                "object": "list",
                "model": body.get("model"),
                "data": [{"object": "embedding", "index": i, "embedding": [0.0] * 8} for i in range(len(inputs))],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def models(self, request: Request) -> Response:
        await self._receive(request)
        names = ("gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5", "llama-3.1-8b-instant", "gemini-2.0-flash")
        return JSONResponse(
            {"object": "list", "data": [{"id": n, "object": "model", "owned_by": "sim"} for n in names]}
        )

    # --- Anthropic ----------------------------------------------------------------------

    async def anthropic_messages(self, request: Request) -> Response:
        body, b = await self._receive(request)
        if b.status != 200:
            return _anthropic_error(b.status)
        if not isinstance(body.get("messages"), list) or "max_tokens" not in body:
            return _anthropic_error(400, "messages and max_tokens are required")
        model = str(body.get("model"))
        input_tokens = _count_prompt(body["messages"]) + (
            len(str(body.get("system", "")).split()) if body.get("system") else 0
        )
        words = _answer(b.chunks)
        mid = f"msg_{uuid.uuid4().hex[:24]}"
        usage_in = {
            "input_tokens": input_tokens,
            "output_tokens": 1,
            "cache_read_input_tokens": 0,
            "cache_creation_input_tokens": 0,
        }
        if not body.get("stream"):
            await asyncio.sleep(b.first_token_ms / 1000)
            return JSONResponse(
                {
                    "id": mid,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [{"type": "text", "text": "".join(words)}],
                    "stop_reason": "end_turn",
                    "stop_sequence": None,
                    "usage": {**usage_in, "output_tokens": len(words)},
                }
            )

        def event(name: str, data: dict) -> bytes:
            return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()

        async def events():
            await asyncio.sleep(b.first_token_ms / 1000)
            yield event(
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        "id": mid,
                        "type": "message",
                        "role": "assistant",
                        "model": model,
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": usage_in,
                    },
                },
            )
            yield event(
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            )
            for i, word in enumerate(words):
                if i and b.chunk_gap_ms:
                    await asyncio.sleep(b.chunk_gap_ms / 1000)
                yield event(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": word}},
                )
            yield event("content_block_stop", {"type": "content_block_stop", "index": 0})
            yield event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": len(words)},
                },
            )
            yield event("message_stop", {"type": "message_stop"})

        return _sse(events())


def _sse(events) -> StreamingResponse:
    return StreamingResponse(events, media_type="text/event-stream", headers={"cache-control": "no-cache"})


def _answer(n: int) -> list[str]:
    return [("" if i == 0 else " ") + WORDS[i % len(WORDS)] for i in range(max(n, 1))]


def _count_prompt(messages: list) -> int:
    """About what a tokenizer gives for English: four characters a token, plus framing."""
    chars = 0
    for m in messages:
        content = m.get("content") if isinstance(m, dict) else m
        chars += len(content if isinstance(content, str) else json.dumps(content))
    return max(1, chars // 4) + 3 * len(messages)


_OPENAI_ERRORS = {
    400: ("invalid_request_error", "bad request"),
    401: ("invalid_request_error", "Incorrect API key provided"),
    404: ("invalid_request_error", "not found"),
    429: ("rate_limit_exceeded", "Rate limit reached, please try again later"),
    500: ("server_error", "The server had an error while processing your request"),
    503: ("server_error", "The engine is currently overloaded"),
}
_ANTHROPIC_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def _openai_error(status: int, message: str | None = None) -> Response:
    kind, default = _OPENAI_ERRORS.get(status, ("server_error", "simulated error"))
    return JSONResponse({"error": {"message": message or default, "type": kind, "param": None, "code": kind}}, status)


def _anthropic_error(status: int, message: str | None = None) -> Response:
    kind = _ANTHROPIC_ERRORS.get(status, "api_error")
    return JSONResponse({"type": "error", "error": {"type": kind, "message": message or f"simulated {status}"}}, status)


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--first-token-ms", type=float, default=0.0)
    parser.add_argument("--chunk-gap-ms", type=float, default=0.0)
    parser.add_argument("--chunks", type=int, default=8)
    parser.add_argument("--no-record", action="store_true", help="do not keep requests for /_sim/requests")
    args = parser.parse_args()
    defaults = Behaviour(first_token_ms=args.first_token_ms, chunk_gap_ms=args.chunk_gap_ms, chunks=args.chunks)
    sim = Simulator(defaults, record=not args.no_record)
    uvicorn.run(sim.app(), host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
