"""A local simulator of the LLM providers' wire formats, for tests, demos and benchmarks.

    python scripts/simulator.py --port 9000 [--first-token-ms 200] [--chunk-gap-ms 20] [--chunks 20]
                                [--unserved-model NAME ...] [--task-answers]
                                [--disagree MODEL:TASK=SHARE[,TASK=SHARE...] ...]

Serves, on loopback:
- OpenAI chat completions at /v1/chat/completions, and at Groq's (/openai/v1/...),
  Gemini's (/v1beta/openai/...) and Azure's (/openai/deployments/{d}/...) paths;
- OpenAI's Responses API at /v1/responses and /openai/v1/responses (Groq's root, and Azure's
  v1 API), with the documented event stream (`sequence_number`s, a reasoning item for o1/o3/o4/
  gpt-5 models and its summary deltas when the request asks for `reasoning.summary`);
- Anthropic messages at /v1/messages and their token count at /v1/messages/count_tokens;
- embeddings at /v1/embeddings and at the Groq, Gemini and Azure paths, and GET /v1/models;
non-streaming and SSE, with realistic `usage` (and OpenAI's `stream_options.include_usage`).
DeepSeek's reasoning models (deepseek-r*) stream `delta.reasoning_content` before the answer
and count it in `completion_tokens_details.reasoning_tokens`.

Like the providers, it refuses a model it does not serve, with each provider's 404 (even for a
streaming request): any name ending in "-does-not-exist", and each `--unserved-model NAME`.
On Azure's /openai/deployments/{d}/... paths the reply's `model` is the underlying model, as
Azure reports it: d itself when it looks like a model name (gpt-, o1, o3, o4, text-embedding-),
else gpt-4.1-mini-2025-04-14 (text-embedding-3-small for embeddings).

Per request, headers override the command-line defaults:
  X-Sim-Status: 429          answer with this error status and a provider-shaped error body
  X-Sim-First-Token-Ms: 200  wait before the first token (before the headers when not streaming)
  X-Sim-Headers-Delay-Ms: N  wait before sending any response headers at all
  X-Sim-Chunk-Gap-Ms: 20     wait between stream chunks
  X-Sim-Chunks: 20           how many content chunks a stream has
  X-Sim-Reasoning: 8         how many reasoning chunks come first (chat: DeepSeek's
                             `reasoning_content`; responses: reasoning tokens and summary deltas);
                             by default 8 for reasoning models, 0 for the others
  X-Sim-Stream-Error: 1      a 200 stream sends two content chunks, then the provider's own
                             in-stream error (OpenAI, Groq on /openai/v1/..., Anthropic,
                             Responses) and closes without its terminal event
  X-Sim-Only-Model: NAME     apply the headers above only when the body's model (or the Azure
                             deployment) is NAME; other models get the command-line defaults
  X-Sim-Stamp: 1             stamp each OpenAI stream chunk with its send time (`"sim_sent":
                             Unix seconds), so that a client can time every chunk's trip

Task answers (opt-in: --task-answers, or --disagree, which implies it; in code
`Simulator(defaults, task_answers=True, disagree={"gpt-4o-mini": {"extraction": 0.3}})`):
chat completions, Responses and Anthropic messages answer what the request's task calls for,
deterministically per (model, prompt), so that a test of shadow experiments knows the truth.
- The task: "tool_call" when the request has named tools (chat: tools[i].function.name, else
  tools[i].name); else the system prompt's first word, case-insensitively and without its
  punctuation: classify -> classification, extract -> extraction, summarise or summarize ->
  summarisation, reason -> reasoning, anything else (or no system prompt) -> generation. The
  system prompt is the Responses API's `instructions`, Anthropic's `system` (a string or text
  blocks), else the first message (or Responses input item) with role system or developer.
- The prompt: json.dumps({messages, input, system, instructions}, sort_keys=True), absent ones
  as null; not the model. The true answer depends on the prompt alone.
- --disagree MODEL:TASK=SHARE[,TASK=SHARE...] (repeatable, e.g. gpt-4o-mini:classification=0.03,
  extraction=0.3; TASK one of classification, extraction, summarisation, generation, reasoning,
  tool_call): MODEL answers a TASK prompt otherwise iff
  int(sha256(f"{MODEL}\\0{prompt}").hexdigest()[:8], 16) / 2**32 < SHARE. Any other model and
  task answers the truth. The other answer depends on the prompt alone (a salted hash), so
  every disagreeing model gives the same one.
- The answers. classification: one label, from the list after "labels:" in the system prompt
  (comma-separated, to the end of the line; two at least), else billing, technical, account,
  other; disagreeing: the next label of the list, cyclically. extraction: the text of a JSON
  object {"name": "Ada Lovelace", "city": "Lyon", "amount": 1234, "date": "2024-05-17"};
  disagreeing: 2 to 4 of its fields differ. summarisation, generation, reasoning: a sentence of
  20 to 40 words of a 200-word vocabulary; disagreeing: another draw (ROUGE-L far below 0.6).
  tool_call: a call of one of the request's tools with arguments {"query": "<three words>"};
  disagreeing: the next tool, or, with one tool, other arguments.
- The shapes: chat answers a call with message.tool_calls (finish_reason "tool_calls") and
  streams it as delta.tool_calls (index, id and function name first, then argument pieces);
  Anthropic with a tool_use block (stop_reason "tool_use"), streamed as input_json_delta;
  the Responses API with a function_call item, streamed as response.function_call_arguments
  deltas. Texts stream in word chunks (X-Sim-Chunks does not apply); reasoning chunks come
  first as above. Usage: output tokens are the answer's words (a call: its arguments at four
  characters a token) plus any reasoning; prompt tokens as always.

Every request received is recorded: GET /_sim/requests lists them (method, path, query,
headers, body), DELETE /_sim/requests forgets them. Point Lectr at it with
LECTR_OPENAI_BASE_URL=http://127.0.0.1:9000/v1 and LECTR_ANTHROPIC_BASE_URL=http://127.0.0.1:9000, etc.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

# Run as `python scripts/simulator.py`: its own directory is on sys.path.
from sim_answers import TASKS, Answer, Disagreement, check_shares, parse_disagree, task_answer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

WORDS = (
    "Lectr routes each request to the model that fits the task and records what it cost "
    "so that every team can see which feature spends what and where a cheaper model would do"
).split()
THOUGHTS = (
    "Let me think about what the user asks here and which short answer would serve them best before I write it down"
).split()

AZURE_CHAT_MODEL = "gpt-4.1-mini-2025-04-14"
AZURE_EMBEDDING_MODEL = "text-embedding-3-small"
_MODEL_LIKE = ("gpt-", "o1", "o3", "o4", "text-embedding-")
_RESPONSES_REASONING = ("o1", "o3", "o4", "gpt-5")
_CHAT_REASONING = ("deepseek-r",)  # deepseek-reasoner, deepseek-r1...
_DEFAULT_REASONING_CHUNKS = 8


@dataclass
class Behaviour:
    status: int = 200
    first_token_ms: float = 0.0
    headers_delay_ms: float = 0.0
    chunk_gap_ms: float = 0.0
    chunks: int = 8
    stamp: bool = False
    reasoning: int | None = None  # None: by the model
    stream_error: bool = False


class Simulator:
    def __init__(
        self,
        defaults: Behaviour,
        record: bool = True,
        unserved: Iterable[str] = (),
        task_answers: bool = False,
        disagree: dict[str, dict[str, float]] | None = None,
    ) -> None:
        self.defaults = defaults
        self.record = record  # off for long benchmarks: the list would grow without bound
        self.unserved = frozenset(unserved)
        self.received: list[dict] = []
        self.task_answers = task_answers or disagree is not None
        self.disagree = {model: check_shares(model, shares) for model, shares in (disagree or {}).items()}

    def app(self) -> Starlette:
        openai_chat, responses, embeddings = self.openai_chat, self.openai_responses, self.embeddings
        return Starlette(
            routes=[
                Route("/v1/chat/completions", openai_chat, methods=["POST"]),
                Route("/openai/v1/chat/completions", openai_chat, methods=["POST"]),
                Route("/v1beta/openai/chat/completions", openai_chat, methods=["POST"]),
                Route("/openai/deployments/{deployment}/chat/completions", openai_chat, methods=["POST"]),
                Route("/v1/responses", responses, methods=["POST"]),
                Route("/openai/v1/responses", responses, methods=["POST"]),
                Route("/v1/messages", self.anthropic_messages, methods=["POST"]),
                Route("/v1/messages/count_tokens", self.anthropic_count_tokens, methods=["POST"]),
                Route("/v1/embeddings", embeddings, methods=["POST"]),
                Route("/openai/v1/embeddings", embeddings, methods=["POST"]),
                Route("/v1beta/openai/embeddings", embeddings, methods=["POST"]),
                Route("/openai/deployments/{deployment}/embeddings", embeddings, methods=["POST"]),
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
        body = body if isinstance(body, dict) else {}
        # One pass over the raw headers (ASGI names them in lower case) instead of a look-up each.
        h = {k.decode("latin-1"): v.decode("latin-1") for k, v in request.scope["headers"] if k.startswith(b"x-sim-")}
        stamp = h.get("x-sim-stamp", "") == "1"  # a measurement: for every model
        only = h.get("x-sim-only-model")
        # Lectr retries a failed request with the same headers: this lets a test fail only one model.
        if only is not None and only not in (body.get("model"), request.path_params.get("deployment")):
            h = {}
        d = self.defaults
        reasoning = h.get("x-sim-reasoning")
        behaviour = Behaviour(
            status=int(h.get("x-sim-status", d.status)),
            first_token_ms=float(h.get("x-sim-first-token-ms", d.first_token_ms)),
            headers_delay_ms=float(h.get("x-sim-headers-delay-ms", d.headers_delay_ms)),
            chunk_gap_ms=float(h.get("x-sim-chunk-gap-ms", d.chunk_gap_ms)),
            chunks=int(h.get("x-sim-chunks", d.chunks)),
            stamp=stamp,
            reasoning=d.reasoning if reasoning is None else int(reasoning),
            stream_error=h.get("x-sim-stream-error") == "1" or d.stream_error,
        )
        if behaviour.headers_delay_ms:
            await asyncio.sleep(behaviour.headers_delay_ms / 1000)
        return body, behaviour

    def _unserved(self, *names: object) -> str | None:
        """The first of the names that this simulator does not serve as a model."""
        for name in names:
            if isinstance(name, str) and (name.endswith("-does-not-exist") or name in self.unserved):
                return name
        return None

    def _task_answer(self, body: dict, model: str) -> Answer | None:
        """The answer in task-answers mode; None in the default mode, which answers WORDS."""
        return task_answer(body, model, self.disagree) if self.task_answers else None

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
        deployment = request.path_params.get("deployment")
        if refused := self._unserved(body.get("model"), deployment):
            return _openai_model_not_found(refused)
        if not isinstance(body.get("messages"), list):
            return _openai_error(400, "'messages' is a required property")
        requested = str(body.get("model") or deployment or "unknown")
        model = _azure_model(deployment, AZURE_CHAT_MODEL) if deployment else requested
        prompt_tokens = _count_prompt(body["messages"])
        answer = self._task_answer(body, requested)
        words = answer.chunks() if answer else _answer(b.chunks)
        call = answer if answer and answer.tool else None
        call_id = f"call_{uuid.uuid4().hex[:24]}"
        finish = "tool_calls" if call else "stop"
        reasoning = _reasoning_chunks(b, requested, _CHAT_REASONING)
        thoughts = _answer(reasoning, THOUGHTS) if reasoning else []
        cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        completion_tokens = (answer.tokens if answer else len(words)) + len(thoughts)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0},
        }
        if thoughts:
            usage["completion_tokens_details"] = {"reasoning_tokens": len(thoughts)}
        if not body.get("stream"):
            await asyncio.sleep(b.first_token_ms / 1000)
            message = {"role": "assistant", "content": "".join(words)}
            if call:
                function = {"name": call.tool, "arguments": call.arguments}
                message = {"role": "assistant", "content": None, "tool_calls": [_chat_call(call_id, function)]}
            if thoughts:
                message["reasoning_content"] = "".join(thoughts)
            return JSONResponse(
                {
                    "id": cid,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                    "usage": usage,
                }
            )
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        stream_error = _chat_stream_error(request.url.path) if b.stream_error else None
        if stream_error:
            words = words[:2]

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

        def piece(text: str) -> dict:
            """A delta of the answer: its text, or its call's arguments."""
            return {"tool_calls": [{"index": 0, "function": {"arguments": text}}]} if call else {"content": text}

        async def events():
            await asyncio.sleep(b.first_token_ms / 1000)
            yield chunk({"role": "assistant", "content": None if call else ""})
            if thoughts:
                for i, thought in enumerate(thoughts):
                    if i and b.chunk_gap_ms:
                        await asyncio.sleep(b.chunk_gap_ms / 1000)
                    yield chunk({"content": None, "reasoning_content": thought})
                if b.chunk_gap_ms:
                    await asyncio.sleep(b.chunk_gap_ms / 1000)
            if call:  # as OpenAI streams a call: its id and name first, then its arguments in pieces
                yield chunk({"tool_calls": [{"index": 0, **_chat_call(call_id, {"name": call.tool, "arguments": ""})}]})
            for i, word in enumerate(words):
                if i and b.chunk_gap_ms:
                    await asyncio.sleep(b.chunk_gap_ms / 1000)
                yield chunk(piece(word))
            if stream_error:
                yield stream_error  # and close: no finish_reason, no [DONE]
                return
            yield chunk({}, finish)
            if include_usage:
                yield chunk({}, with_usage=True)
            yield b"data: [DONE]\n\n"

        return _sse(events())

    async def openai_responses(self, request: Request) -> Response:
        body, b = await self._receive(request)
        if b.status != 200:
            return _openai_error(b.status)
        if refused := self._unserved(body.get("model")):
            return _openai_model_not_found(refused)
        if not body.get("model"):
            return _openai_error(400, "Missing required parameter: 'model'.")
        items = _response_input(body.get("input"))
        if items is None:
            return _openai_error(400, "Invalid type for 'input': expected a string or an array of input items.")
        if body.get("instructions"):
            items.append({"role": "system", "content": body["instructions"]})
        model = str(body["model"])
        input_tokens = _count_prompt(items)
        answer = self._task_answer(body, model)
        words = answer.chunks() if answer else _answer(b.chunks)
        call = answer if answer and answer.tool else None
        reasoning = _reasoning_chunks(b, model, _RESPONSES_REASONING)
        thoughts = _answer(reasoning, THOUGHTS) if reasoning else []
        asked = body.get("reasoning") if isinstance(body.get("reasoning"), dict) else {}
        summary = "".join(thoughts) if thoughts and asked.get("summary") else None
        rid, msg_id, rs_id, fc_id = (f"{p}_{uuid.uuid4().hex}" for p in ("resp", "msg", "rs", "fc"))
        created = int(time.time())
        text = "".join(words)
        part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
        message = {"id": msg_id, "type": "message", "status": "completed", "role": "assistant", "content": [part]}
        item = message  # the answer's item: the message, or a function call
        if call:
            call_id = f"call_{uuid.uuid4().hex[:24]}"
            item = {"id": fc_id, "type": "function_call", "status": "completed", "call_id": call_id}
            item |= {"name": call.tool, "arguments": call.arguments}
        reasoning_item = {"id": rs_id, "type": "reasoning", "summary": []}
        if summary is not None:
            reasoning_item["summary"] = [{"type": "summary_text", "text": summary}]
        output = [reasoning_item, item] if thoughts else [item]
        output_tokens = (answer.tokens if answer else len(words)) + len(thoughts)
        usage = {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": len(thoughts)},
            "total_tokens": input_tokens + output_tokens,
        }
        reasoning_model = model.startswith(_RESPONSES_REASONING)

        def response(status: str, out: list, used: dict | None) -> dict:
            return {
                "id": rid,
                "object": "response",
                "created_at": created,
                "status": status,
                "background": False,
                "completed_at": int(time.time()) if status == "completed" else None,
                "error": None,
                "incomplete_details": None,
                "instructions": body.get("instructions"),
                "max_output_tokens": body.get("max_output_tokens"),
                "metadata": body.get("metadata") or {},
                "model": model,
                "output": out,
                "parallel_tool_calls": body.get("parallel_tool_calls", True),
                "previous_response_id": body.get("previous_response_id"),
                "reasoning": {
                    "effort": asked.get("effort", "medium" if reasoning_model else None),
                    "summary": asked.get("summary"),
                },
                "service_tier": "default",
                "store": body.get("store", True),
                "temperature": body.get("temperature", 1.0),
                "text": body.get("text") or {"format": {"type": "text"}},
                "tool_choice": body.get("tool_choice", "auto"),
                "tools": body.get("tools") or [],
                "top_p": body.get("top_p", 1.0),
                "truncation": body.get("truncation", "disabled"),
                "usage": used,
                "user": body.get("user"),
            }

        if not body.get("stream"):
            await asyncio.sleep(b.first_token_ms / 1000)
            return JSONResponse(response("completed", output, usage))
        sequence = itertools.count()

        def event(kind: str, **fields) -> bytes:
            data = {"type": kind, "sequence_number": next(sequence), **fields}
            return f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()

        index = 1 if thoughts else 0  # the answer's place in `output`
        at_text = {"item_id": msg_id, "output_index": index, "content_index": 0}
        at_call = {"item_id": fc_id, "output_index": index}
        at_summary = {"item_id": rs_id, "output_index": 0, "summary_index": 0}

        async def events():
            await asyncio.sleep(b.first_token_ms / 1000)
            yield event("response.created", response=response("in_progress", [], None))
            yield event("response.in_progress", response=response("in_progress", [], None))
            if thoughts:
                yield event("response.output_item.added", output_index=0, item={**reasoning_item, "summary": []})
                if summary is not None:
                    empty = {"type": "summary_text", "text": ""}
                    yield event("response.reasoning_summary_part.added", **at_summary, part=empty)
                    for i, thought in enumerate(thoughts):
                        if i and b.chunk_gap_ms:
                            await asyncio.sleep(b.chunk_gap_ms / 1000)
                        yield event("response.reasoning_summary_text.delta", **at_summary, delta=thought)
                    yield event("response.reasoning_summary_text.done", **at_summary, text=summary)
                    yield event("response.reasoning_summary_part.done", **at_summary, part=reasoning_item["summary"][0])
                yield event("response.output_item.done", output_index=0, item=reasoning_item)
                if b.chunk_gap_ms:
                    await asyncio.sleep(b.chunk_gap_ms / 1000)
            if call:
                added = {**item, "status": "in_progress", "arguments": ""}
                yield event("response.output_item.added", output_index=index, item=added)
            else:
                added = {**message, "status": "in_progress", "content": []}
                yield event("response.output_item.added", output_index=index, item=added)
                yield event("response.content_part.added", **at_text, part={**part, "text": ""})
            for i, word in enumerate(words[:2] if b.stream_error else words):
                if i and b.chunk_gap_ms:
                    await asyncio.sleep(b.chunk_gap_ms / 1000)
                if call:
                    yield event("response.function_call_arguments.delta", **at_call, delta=word)
                else:
                    yield event("response.output_text.delta", **at_text, delta=word, logprobs=[])
            if b.stream_error:  # and close: no response.completed
                message_text = "The server had an error processing your request. Sorry about that!"
                yield event("error", code="server_error", message=message_text, param=None)
                return
            if call:
                yield event("response.function_call_arguments.done", **at_call, arguments=call.arguments)
            else:
                yield event("response.output_text.done", **at_text, text=text, logprobs=[])
                yield event("response.content_part.done", **at_text, part=part)
            yield event("response.output_item.done", output_index=index, item=item)
            yield event("response.completed", response=response("completed", output, usage))

        return _sse(events())

    async def embeddings(self, request: Request) -> Response:
        body, b = await self._receive(request)
        if b.status != 200:
            return _openai_error(b.status)
        deployment = request.path_params.get("deployment")
        if refused := self._unserved(body.get("model"), deployment):
            return _openai_model_not_found(refused)
        inputs = body.get("input")
        if not isinstance(inputs, list) or (inputs and isinstance(inputs[0], int)):
            inputs = [inputs]  # one string, or one list of token ids
        tokens = sum(_embedding_tokens(i) for i in inputs)
        dimensions = body.get("dimensions") if isinstance(body.get("dimensions"), int) else 8
        return JSONResponse(
            {
                "object": "list",
                "model": _azure_model(deployment, AZURE_EMBEDDING_MODEL) if deployment else body.get("model"),
                "data": [
                    {"object": "embedding", "index": i, "embedding": [0.0] * dimensions} for i in range(len(inputs))
                ],
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
        if refused := self._unserved(body.get("model")):
            return _anthropic_model_not_found(refused)
        if not isinstance(body.get("messages"), list) or "max_tokens" not in body:
            return _anthropic_error(400, "messages and max_tokens are required")
        model = str(body.get("model"))
        input_tokens = _anthropic_input_tokens(body)
        answer = self._task_answer(body, model)
        words = answer.chunks() if answer else _answer(b.chunks)
        output_tokens = answer.tokens if answer else len(words)
        call = answer if answer and answer.tool else None
        tool_use = {"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:24]}", "name": call.tool} if call else {}
        stop_reason = "tool_use" if call else "end_turn"
        mid = f"msg_{uuid.uuid4().hex[:24]}"
        usage_in = {
            "input_tokens": input_tokens,
            "output_tokens": 1,
            "cache_read_input_tokens": 0,
            "cache_creation_input_tokens": 0,
        }
        if not body.get("stream"):
            await asyncio.sleep(b.first_token_ms / 1000)
            text_block = {"type": "text", "text": "".join(words)}
            return JSONResponse(
                {
                    "id": mid,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [{**tool_use, "input": json.loads(call.arguments)} if call else text_block],
                    "stop_reason": stop_reason,
                    "stop_sequence": None,
                    "usage": {**usage_in, "output_tokens": output_tokens},
                }
            )
        if b.stream_error:
            words = words[:2]

        def event(name: str, data: dict) -> bytes:
            return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()

        def piece(text: str) -> dict:
            """A delta of the answer: its text, or its call's input as JSON text."""
            return {"type": "input_json_delta", "partial_json": text} if call else {"type": "text_delta", "text": text}

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
            block = {**tool_use, "input": {}} if call else {"type": "text", "text": ""}
            yield event("content_block_start", {"type": "content_block_start", "index": 0, "content_block": block})
            for i, word in enumerate(words):
                if i and b.chunk_gap_ms:
                    await asyncio.sleep(b.chunk_gap_ms / 1000)
                yield event("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": piece(word)})
            if b.stream_error:  # and close: no message_stop
                yield event("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
                return
            yield event("content_block_stop", {"type": "content_block_stop", "index": 0})
            yield event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                    "usage": {"output_tokens": output_tokens},
                },
            )
            yield event("message_stop", {"type": "message_stop"})

        return _sse(events())

    async def anthropic_count_tokens(self, request: Request) -> Response:
        body, b = await self._receive(request)
        if b.status != 200:
            return _anthropic_error(b.status)
        if refused := self._unserved(body.get("model")):
            return _anthropic_model_not_found(refused)
        if not isinstance(body.get("messages"), list) or not body.get("model"):
            return _anthropic_error(400, "model and messages are required")
        await asyncio.sleep(b.first_token_ms / 1000)
        return JSONResponse({"input_tokens": _anthropic_input_tokens(body)})


def _sse(events) -> StreamingResponse:
    return StreamingResponse(events, media_type="text/event-stream", headers={"cache-control": "no-cache"})


def _answer(n: int, words: list[str] = WORDS) -> list[str]:
    return [("" if i == 0 else " ") + words[i % len(words)] for i in range(max(n, 1))]


def _chat_call(call_id: str, function: dict) -> dict:
    return {"id": call_id, "type": "function", "function": function}


def _reasoning_chunks(b: Behaviour, model: str, reasoning_models: tuple[str, ...]) -> int:
    if b.reasoning is not None:
        return max(b.reasoning, 0)
    return _DEFAULT_REASONING_CHUNKS if model.startswith(reasoning_models) else 0


def _count_prompt(messages: list) -> int:
    """About what a tokenizer gives for English: four characters a token, plus framing."""
    chars = 0
    for m in messages:
        content = m.get("content") if isinstance(m, dict) else m
        chars += len(content if isinstance(content, str) else json.dumps(content))
    return max(1, chars // 4) + 3 * len(messages)


def _anthropic_input_tokens(body: dict) -> int:
    """What /v1/messages reports as `input_tokens`, and /v1/messages/count_tokens answers."""
    system = len(str(body.get("system", "")).split()) if body.get("system") else 0
    return _count_prompt(body["messages"]) + system


def _response_input(value: object) -> list | None:
    """The Responses API's `input` as messages for `_count_prompt`; None when it is neither form."""
    if value is None:
        return []
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if isinstance(value, list):
        # Items such as function_call_output have no `content`: count all of them.
        return [i if isinstance(i, dict) and "content" in i else {"content": i} for i in value]
    return None


def _embedding_tokens(value: object) -> int:
    """A token list counts its length; text about four characters a token, as a tokenizer does."""
    if isinstance(value, list):
        return len(value)
    text = value if isinstance(value, str) else json.dumps(value)
    return max(1, (len(text) + 3) // 4)


def _azure_model(deployment: str, underlying: str) -> str:
    """Azure answers with the deployed model's name, not the deployment's."""
    return deployment if deployment.startswith(_MODEL_LIKE) else underlying


def _chat_stream_error(path: str) -> bytes:
    if path.startswith("/openai/v1/"):  # Groq names its SSE events
        error = {"error": {"message": "Internal Server Error", "type": "internal_server_error"}}
        return f"event: error\ndata: {json.dumps(error)}\n\n".encode()
    message = "The server had an error while processing your request. Sorry about that!"
    error = {"error": {"message": message, "type": "server_error", "param": None, "code": None}}
    return f"data: {json.dumps(error)}\n\n".encode()


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


def _openai_model_not_found(model: str) -> Response:
    message = f"The model `{model}` does not exist or you do not have access to it."
    error = {"message": message, "type": "invalid_request_error", "param": None, "code": "model_not_found"}
    return JSONResponse({"error": error}, 404)


def _anthropic_error(status: int, message: str | None = None) -> Response:
    kind = _ANTHROPIC_ERRORS.get(status, "api_error")
    return JSONResponse({"type": "error", "error": {"type": kind, "message": message or f"simulated {status}"}}, status)


def _anthropic_model_not_found(model: str) -> Response:
    return JSONResponse({"type": "error", "error": {"type": "not_found_error", "message": f"model: {model}"}}, 404)


def _disagreement(spec: str) -> Disagreement:
    try:
        return parse_disagree(spec)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from e


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--first-token-ms", type=float, default=0.0)
    parser.add_argument("--chunk-gap-ms", type=float, default=0.0)
    parser.add_argument("--chunks", type=int, default=8)
    parser.add_argument("--no-record", action="store_true", help="do not keep requests for /_sim/requests")
    parser.add_argument(
        "--unserved-model",
        action="append",
        default=[],
        metavar="NAME",
        help="refuse this model with the provider's 404, as for a retired model (repeatable)",
    )
    parser.add_argument(
        "--task-answers",
        action="store_true",
        help="answer what each request's task calls for, deterministically per model and prompt (see above)",
    )
    parser.add_argument(
        "--disagree",
        action="append",
        default=[],
        type=_disagreement,
        metavar="MODEL:TASK=SHARE,...",
        help=f"MODEL answers otherwise on SHARE (0 to 1) of TASK's prompts; TASK one of {', '.join(TASKS)}; "
        "e.g. gpt-4o-mini:classification=0.03,extraction=0.3 (repeatable; implies --task-answers)",
    )
    args = parser.parse_args()
    defaults = Behaviour(first_token_ms=args.first_token_ms, chunk_gap_ms=args.chunk_gap_ms, chunks=args.chunks)
    disagree: dict[str, dict[str, float]] = {}
    for model, shares in args.disagree:
        disagree.setdefault(model, {}).update(shares)
    sim = Simulator(
        defaults,
        record=not args.no_record,
        unserved=args.unserved_model,
        task_answers=args.task_answers,
        disagree=disagree or None,
    )
    uvicorn.run(sim.app(), host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
