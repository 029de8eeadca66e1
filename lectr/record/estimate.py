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

from lectr.common.usage import ANTHROPIC, RESPONSES, Usage, as_list
from lectr.record import renderings, tokens
from lectr.record.renderings import Rendering, rendering
from lectr.record.written import Output, as_json, collect, collect_content, tool_call


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
            collect_content(prompt.texts, body.get("system"))
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
            collect_content(prompt.texts, body.get(field))
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
            collect(prompt.framing, message.get("role"))
        collect(prompt.framing, message.get("name"))
        for key in ("reasoning_content", "reasoning"):  # replayed reasoning (DeepSeek, Groq, ...)
            collect(prompt.texts, message.get(key))
        content = message.get("content")
        for block in content if isinstance(content, list) else [content]:
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "tool_use":  # Anthropic
                prompt.calls += 1
                collect(prompt.framing, block.get("name"))
                collect(prompt.texts, as_json(block.get("input")))
            elif kind == "tool_result":
                prompt.results += 1
                collect_content(prompt.texts, block.get("content"))
            elif kind == "thinking" and isinstance(block.get("thinking"), list):  # Mistral keeps its thinking
                collect_content(prompt.texts, block["thinking"])
            elif kind not in ("thinking", "redacted_thinking"):  # Anthropic drops earlier turns' thinking
                collect_content(prompt.texts, [block])
        calls = [call.get("function") for call in as_list(message.get("tool_calls")) if isinstance(call, dict)]
        calls = [tool_call(f.get("name"), f.get("arguments")) for f in calls if isinstance(f, dict)]
        prompt.calls += len(calls)
        if rendering.parallel and len(calls) > 1:
            prompt.framing += [renderings.parallel(calls), "multi_tool_use.parallel"]
            prompt.calls -= len(calls) - 1
        else:
            for name, arguments in calls:
                collect(prompt.framing, name)
                collect(prompt.texts, arguments)
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
            collect(prompt.framing, item.get("role"))
            collect_content(prompt.texts, item.get("content"))
        elif kind == "function_call":
            prompt.calls += 1
            collect(prompt.framing, item.get("name"))
            collect(prompt.texts, item.get("arguments"))
        elif kind == "function_call_output":
            prompt.results += 1
            collect_content(prompt.texts, item.get("output"))
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
