"""What a tokeniser counts when the provider reported no usage: the request's prompt and
what the model wrote.

Pure but for tiktoken (lectr.record.tokens). The writer calls `count` for a streamed response
that carried no usage (an OpenAI stream without `stream_options.include_usage` is the
SDK's default), and to calibrate the count against responses that did report usage.

A provider does not bill the JSON it receives: it bills the prompt it renders from it,
and what the model generates. So the count follows each model family's rendering
(lectr.record.renderings): message framing, tool definitions, tool calls and their results,
reasoning.
"""

from __future__ import annotations

import json
import re
from typing import NamedTuple

from lectr.common.usage import ANTHROPIC, RESPONSES, Usage, as_list
from lectr.record import renderings, tokens
from lectr.record.renderings import Rendering, rendering


class Output(NamedTuple):
    """What the model wrote: its text (answer and reasoning) and its tool calls, each a
    (name, arguments) pair: a call costs its name and some framing besides its arguments."""

    text: str
    calls: tuple[tuple[str, str], ...] = ()

    def __bool__(self) -> bool:  # nothing written, nothing to count
        return bool(self.text or self.calls)

    def all_text(self) -> str:
        return self.text + "".join(arguments for _, arguments in self.calls)


# A finished stream is read with one regular expression instead of one JSON parse per
# event (3,000 events take ~25 ms to parse, ~3 ms this way): what the model wrote is
# every JSON string under the keys below, in order; a "name" starts a tool call, and
# the arguments after it are that call's.
_STRING = rb'("(?:[^"\\]|\\.)*")'
_STREAM = {
    # Chat completions: the answer, tool calls, and reasoning, which DeepSeek and others
    # send as `reasoning_content`, Groq, OpenRouter and Cerebras as `reasoning`
    # (OpenRouter's `reasoning_details` repeats it, under "text", and is not read).
    "openai": re.compile(rb'"(content|reasoning_content|reasoning|name|arguments)"\s*:\s*' + _STRING),
    # Messages API: text, thinking, and tool calls (a tool_use block names its tool when it
    # starts; its input follows as `input_json_delta`).
    "anthropic": re.compile(rb'"(text|thinking|name|partial_json)"\s*:\s*' + _STRING),
    # Responses API: every text the model writes arrives as a string `delta` (output text,
    # function-call arguments, reasoning summaries and text); the `*.done` events and
    # `response.completed` repeat it whole, so only deltas are read, and a function call's
    # name only from the event that adds the call (other events echo the request's tools).
    # Arguments are not told from text here: no rendering of the Responses API needs it.
    "responses": re.compile(
        rb'"(delta)"\s*:\s*' + _STRING + rb'|"response\.output_item\.added"[^\n]*?"(name)"\s*:\s*' + _STRING
    ),
}
_ARGUMENTS = (b"arguments", b"partial_json")
# An audio delta's data line, known by its type inside the data or by the event line before it
# (a stream cut inside the data may not have reached the type yet).
_AUDIO_DELTA = re.compile(
    rb'^data:[^\n]*"response\.audio\.delta"[^\n]*$|^event:[ \t]*response\.audio\.delta\r?\n(?:data:[^\n]*(?:\n|$))*',
    re.MULTILINE,
)


def stream_output(data: bytes, style: str) -> Output:
    """What the model wrote in a finished SSE stream."""
    data = bytes(data)
    if style == RESPONSES and b"response.audio.delta" in data:
        data = _AUDIO_DELTA.sub(b"", data)  # base64 audio is not text a tokeniser counts
    found = _STREAM[style].findall(data)
    if style == RESPONSES:  # two alternatives, two groups each
        found = [(key or name_key, value or name) for key, value, name_key, name in found]
    values = _strings([literal for _, literal in found])
    text: list[str] = []
    calls: list[tuple[str, list[str]]] = []
    for (key, _), value in zip(found, values):
        if key == b"name":
            if style == "openai" and calls and calls[-1][0] == value and not "".join(calls[-1][1]):
                continue  # the name repeated in every chunk of one call (some providers do)
            calls.append((value, []))
        elif key in _ARGUMENTS and calls:
            calls[-1][1].append(value)
        else:
            text.append(value)
    return Output("".join(text), tuple((name, "".join(arguments)) for name, arguments in calls))


def body_output(body: object, style: str) -> Output:
    """What the model wrote in a non-streaming response body (decoded JSON)."""
    if not isinstance(body, dict):
        return Output("")
    parts: list[str] = []
    calls: list[tuple[str, str]] = []
    if style == ANTHROPIC:
        for block in as_list(body.get("content")):
            if isinstance(block, dict):
                _collect(parts, block.get("text"))
                _collect(parts, block.get("thinking"))
                if block.get("type") == "tool_use":
                    calls.append(_call(block.get("name"), _json(block.get("input"))))
    for item in as_list(body.get("output")):  # Responses API
        if isinstance(item, dict):
            if item.get("type") == "function_call":
                calls.append(_call(item.get("name"), item.get("arguments")))
            for part in as_list(item.get("summary")) + as_list(item.get("content")):
                if isinstance(part, dict):
                    _collect(parts, part.get("text"))
    for choice in as_list(body.get("choices")):
        message = choice.get("message") if isinstance(choice, dict) else None
        if isinstance(message, dict):
            for key in ("reasoning_content", "reasoning"):
                _collect(parts, message.get(key))
            _collect_content(parts, message.get("content"))  # a string, or parts (Mistral's thinking)
            for call in as_list(message.get("tool_calls")):
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict):
                    calls.append(_call(function.get("name"), function.get("arguments")))
    return Output("".join(parts), tuple(calls))


def count(request: object, written: Output | str, style: str, model: str | None) -> Usage:
    """tiktoken's count of a request's prompt (decoded JSON) and of what the model wrote."""
    if isinstance(written, str):
        written = Output(written)
    forced = isinstance(request, dict) and _forces_a_call(request.get("tool_choice"))
    return Usage(prompt_tokens(request, style, model), completion_tokens(written, style, model, forced))


def completion_tokens(written: Output, style: str, model: str | None, forced: bool = False) -> int:
    """What the model wrote, as its provider bills it, counted by tiktoken. `forced`: the
    request's tool_choice made the call, so the model did not write the turn's opening."""
    how = rendering(model, style)
    if how.parallel and len(written.calls) > 1:
        calls = [renderings.parallel(written.calls), "multi_tool_use.parallel"]
        return tokens.count_text([written.text, *calls], model) + how.call_out - 1 + how.reply_out
    calls = [piece for name, arguments in written.calls for piece in (name, arguments)]
    overhead = how.call_out * len(written.calls) + how.reply_out
    if written.calls and not forced:
        overhead += how.tool_turn
    return tokens.count_text([written.text, *calls], model) + overhead


def prompt_tokens(request: object, style: str, model: str | None) -> int:
    """The prompt a provider bills for a request (decoded JSON), as tiktoken counts it."""
    if not isinstance(request, dict):
        return 0
    how = rendering(model, style)
    prompt = _read(request, style, how)
    if not prompt.messages:  # embeddings, completions: the text alone
        return tokens.count_text(prompt.texts, model)
    overhead = how.message * prompt.messages + how.reply + how.fixed
    if prompt.tools:
        if _forces_a_call(request.get("tool_choice")) and how.tools_forced is not None:
            overhead += how.tools_forced
        elif prompt.system and how.tools_joined is not None:
            overhead += how.tools_joined
        else:
            overhead += how.tools
    overhead += how.call_in * prompt.calls + how.result_in * prompt.results
    thinking = request.get("thinking")
    if style == ANTHROPIC and isinstance(thinking, dict) and thinking.get("type") == "enabled":
        overhead += how.thinking
    if prompt.structured:
        overhead += how.structured
    return tokens.count_text(prompt.texts + prompt.framing, model) + overhead


def prompt_texts(body: object, style: str) -> list[str]:
    """The text parts of a request a tokeniser counts: system prompt, message contents, tool
    calls and results, and tool definitions as the model's family renders them."""
    if not isinstance(body, dict):
        return []
    model = body.get("model") if isinstance(body.get("model"), str) else None
    return _read(body, style, rendering(model, style)).texts


def message_count(body: object) -> int:
    messages = body.get("messages") if isinstance(body, dict) else None
    return len(messages) if isinstance(messages, list) else 0


class _Prompt:
    """What a request puts before the model, gathered for counting."""

    def __init__(self) -> None:
        self.texts: list[str] = []  # what the client wrote
        self.framing: list[str] = []  # what the rendering adds in words: roles, names
        self.messages = 0
        self.calls = 0
        self.results = 0
        self.system = False  # the request has a system (or developer) message of its own
        self.structured = False  # a response format (JSON schema) was asked for
        self.tools = False


def _read(body: dict, style: str, rendering: Rendering) -> _Prompt:
    prompt = _Prompt()
    tools: list[dict] = []
    if style == RESPONSES:
        _responses(prompt, body, tools)
    else:
        if style == ANTHROPIC:
            _collect_content(prompt.texts, body.get("system"))
        _messages(prompt, as_list(body.get("messages")), rendering)
        for tool in as_list(body.get("tools")) + as_list(body.get("functions")):  # `functions`: the legacy API
            if isinstance(tool, dict):
                spec = tool.get("function", tool)  # chat nests the definition; Anthropic does not
                if isinstance(spec, dict) and "name" in spec and (style != ANTHROPIC or "input_schema" in spec):
                    tools.append(spec)  # an Anthropic server tool (web search, ...) has no schema to count
        _response_format(prompt, body.get("response_format"))
        output = body.get("output_config") or body.get("output_format")  # Anthropic structured outputs
        if isinstance(output, dict):
            _response_format(prompt, output.get("format", output))
        for field in ("input", "prompt"):  # embeddings, completions
            _collect_content(prompt.texts, body.get(field))
    if tools:
        prompt.texts.append(renderings.typescript(tools) if rendering.typescript else renderings.json_tools(tools))
    prompt.tools = bool(tools)
    return prompt


def _messages(prompt: _Prompt, messages: list, rendering: Rendering) -> None:
    """Chat-completions and Anthropic messages alike: their shapes do not collide."""
    for message in messages:
        if not isinstance(message, dict):
            continue
        prompt.messages += 1
        prompt.system = prompt.system or message.get("role") in ("system", "developer")
        if rendering.roles:
            _collect(prompt.framing, message.get("role"))
        _collect(prompt.framing, message.get("name"))
        for key in ("reasoning_content", "reasoning"):  # replayed reasoning (DeepSeek, Groq, ...)
            _collect(prompt.texts, message.get(key))
        content = message.get("content")
        for block in content if isinstance(content, list) else [content]:
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "tool_use":  # Anthropic
                prompt.calls += 1
                _collect(prompt.framing, block.get("name"))
                _collect(prompt.texts, _json(block.get("input")))
            elif kind == "tool_result":
                prompt.results += 1
                _collect_content(prompt.texts, block.get("content"))
            elif kind == "thinking" and isinstance(block.get("thinking"), list):  # Mistral keeps its thinking
                _collect_content(prompt.texts, block["thinking"])
            elif kind not in ("thinking", "redacted_thinking"):  # Anthropic drops earlier turns' thinking
                _collect_content(prompt.texts, [block])
        calls = [call.get("function") for call in as_list(message.get("tool_calls")) if isinstance(call, dict)]
        calls = [
            _call(function.get("name"), function.get("arguments")) for function in calls if isinstance(function, dict)
        ]
        prompt.calls += len(calls)
        if rendering.parallel and len(calls) > 1:
            prompt.framing += [renderings.parallel(calls), "multi_tool_use.parallel"]
            prompt.calls -= len(calls) - 1
        else:
            for name, arguments in calls:
                _collect(prompt.framing, name)
                _collect(prompt.texts, arguments)
        if message.get("role") in ("tool", "function"):
            prompt.results += 1


def _responses(prompt: _Prompt, body: dict, tools: list[dict]) -> None:
    if isinstance(body.get("instructions"), str) and body["instructions"]:
        prompt.messages += 1
        prompt.system = True
        prompt.framing.append("developer")
        prompt.texts.append(body["instructions"])
    items = body.get("input")
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    for item in as_list(items):
        if not isinstance(item, dict):
            continue
        kind = item.get("type", "message")
        if kind == "message":
            prompt.messages += 1
            prompt.system = prompt.system or item.get("role") in ("system", "developer")
            _collect(prompt.framing, item.get("role"))
            _collect_content(prompt.texts, item.get("content"))
        elif kind == "function_call":
            prompt.calls += 1
            _collect(prompt.framing, item.get("name"))
            _collect(prompt.texts, item.get("arguments"))
        elif kind == "function_call_output":
            prompt.results += 1
            _collect_content(prompt.texts, item.get("output"))
    for tool in as_list(body.get("tools")):
        if isinstance(tool, dict) and tool.get("type") == "function":
            tools.append(tool)
    text = body.get("text")
    if isinstance(text, dict):
        _response_format(prompt, text.get("format"))


def _response_format(prompt: _Prompt, response_format: object) -> None:
    """Structured outputs: the schema joins the prompt. How OpenAI renders it is not
    published; its compact JSON is within a token on simple schemas and ~25% over on
    nested ones with `anyOf` (4 recorded exchanges of gpt-4o)."""
    if not isinstance(response_format, dict) or response_format.get("type") != "json_schema":
        return
    spec = response_format.get("json_schema", response_format)  # chat nests it; Responses does not
    if isinstance(spec, dict) and isinstance(spec.get("schema"), dict):
        prompt.structured = True
        prompt.texts.append(json.dumps(spec["schema"], ensure_ascii=False, separators=(",", ":")))


def _forces_a_call(choice: object) -> bool:
    if isinstance(choice, dict):
        return choice.get("type") in ("any", "tool", "function")
    return choice == "required"


def _strings(literals: list[bytes]) -> list[str]:
    if not literals:
        return []
    try:
        return json.loads(b"[" + b",".join(literals) + b"]")
    except ValueError:  # one malformed literal: keep the others (and their places)
        out = []
        for literal in literals:
            try:
                out.append(json.loads(literal))
            except ValueError:
                out.append("")
        return out


def _collect_content(out: list[str], content: object) -> None:
    """Content as a string, or a list of parts with `text` (OpenAI and Anthropic shapes alike)."""
    if isinstance(content, str):
        out.append(content)
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, dict):
                _collect(out, part.get("text"))
                for key in ("content", "thinking"):  # tool results; Mistral's thinking chunks
                    if isinstance(part.get(key), list) or (key == "content" and isinstance(part.get(key), str)):
                        _collect_content(out, part[key])


def _collect(out: list[str], value: object) -> None:
    if isinstance(value, str) and value:
        out.append(value)


def _call(name: object, arguments: object) -> tuple[str, str]:
    return (name if isinstance(name, str) else "", arguments if isinstance(arguments, str) else "")


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False) if value is not None else ""
