"""How each family of models renders a request into the tokens its provider bills.

Pure. A provider does not bill the JSON it receives: it bills the prompt it renders from
it (message framing, tool definitions as text plus the system prompt that enables tool
use, tool calls and results), and what the model generates. `rendering(model, style)`
says which rendering a model's provider uses; `lectr.record.estimate` counts with it. The
constants come from the providers' documentation where there is one, otherwise from
recorded traffic (tests/fixtures/recorded, measured by scripts/estimate_accuracy.py);
each says which.
"""

from __future__ import annotations

import json
import re
from typing import NamedTuple

from lectr.common.usage import ANTHROPIC, RESPONSES, as_list


class Rendering(NamedTuple):
    """How a family of models renders a request into tokens, beyond the text itself."""

    message: int  # per message: the tokens that open and close it
    reply: int  # the tokens that prime the model's reply
    roles: bool = True  # a message's role is written out (Claude's framing has it in `message`)
    fixed: int = 0  # a system prompt the provider always adds
    tools: int = 0  # the system prompt that enables tools (tool_choice auto or none)
    tools_forced: int | None = None  # ... when tool_choice forces a call (any, or one tool); None: as `tools`
    tools_joined: int | None = None  # ... when they join the request's own system message; None: as `tools`
    typescript: bool = False  # tool definitions rendered as TypeScript (OpenAI), else as JSON
    call_in: int = 0  # per tool call in the history, besides its name and arguments
    result_in: int = 0  # per tool result in the history, besides its content
    call_out: int = 0  # per tool call the model writes, besides its name and arguments
    tool_turn: int = 0  # once in a reply that calls tools
    parallel: bool = False  # two calls or more are written as one `multi_tool_use.parallel` call
    reply_out: int = 0  # the tokens that close the model's reply, when billed
    thinking: int = 0  # Anthropic: extended thinking enabled (with a budget)
    structured: int = 0  # Anthropic: structured outputs (`output_config.format`), besides the schema


# OpenAI's GPT-4-era chat models. The cookbook's "How to count tokens with tiktoken":
# 3 tokens per message (<|im_start|>, <|im_sep|>, <|im_end|>) plus its role, 3 priming
# the reply. Tool definitions are rendered as a TypeScript namespace in the system
# message: hmarr/openai-chat-tokens measured 9 tokens over that text, 4 fewer when a
# system message of the request takes them. Measured on recorded exchanges of gpt-4o and
# gpt-4o-mini: a call the model writes costs 7 tokens over its name and arguments, one
# in the history 4 and its result 4 more; two calls or more are written as one call
# of `multi_tool_use.parallel` with their names and arguments in a JSON list.
_GPT = Rendering(
    message=3, reply=3, tools=9, tools_joined=5, typescript=True, call_in=4, result_in=4, call_out=7, parallel=True
)
# The Responses API renders the same models with less around tools (3 tokens), more
# around calls and their results (7 each), and bills the token that ends the reply
# (measured on 20 recorded exchanges of gpt-4o, gpt-4o-mini, gpt-4.1, gpt-5).
_GPT_RESPONSES = _GPT._replace(tools=3, tools_joined=3, call_in=7, result_in=7, reply_out=1)
# Reasoning models (o1, o3, o4, gpt-5): the reply is primed with one token fewer (the
# model opens its channel itself); in chat completions tools bring a longer preamble
# (89 tokens over the definitions, measured in 15 exchanges of gpt-5, gpt-5-mini and
# gpt-5.4-mini; 7 in the Responses API), and a call costs 16 over its name and arguments.
# Their reasoning is not shown, so what they wrote is undercounted by it.
_O_SERIES = _GPT._replace(reply=2, tools=89, tools_joined=89, call_in=6, result_in=6, call_out=16, parallel=False)
_O_SERIES_RESPONSES = _O_SERIES._replace(tools=7, tools_joined=7, call_in=7, result_in=7)
# gpt-oss (OpenAI's open weights, served by Groq, Cerebras, ...) speaks harmony, whose
# system message (model identity, knowledge cutoff, date, reasoning effort, valid
# channels; see openai/harmony) is always there: ~60 tokens, measured on Groq and Cerebras.
# Its reply opens and closes an analysis and a final channel: 10 tokens over the text
# (measured on 8 exchanges on Groq and Cerebras).
_HARMONY = _O_SERIES._replace(fixed=60, tools=20, tools_joined=20, reply_out=10)
# Claude: `input_tokens` of a one-message request is its text plus 7, measured exact on
# Claude 4 and 4.5 models; each further message ~3 more. Tools bring the tool-use system
# prompt Anthropic documents per model ("Tool use system prompt token count": 346
# tokens for tool_choice auto/none and 313 for any/tool on Claude 4 and Sonnet 3.7;
# Claude 3 Opus 530/281, Sonnet 159/235, Haiku 264/340); tool definitions are JSON.
# Measured on recorded exchanges of Claude Sonnet 4, Sonnet 4.5 and Haiku 4.5: a tool
# call in the history costs ~26 tokens over its name and input, a tool result ~25 over
# its content; a reply costs 3 tokens over its text, a reply calling tools 22 more and
# 25 per call besides its name and input; extended thinking with a budget adds 29 tokens
# to the prompt, structured outputs ~150 besides the schema.
# Claude's tokenizer is not tiktoken's: counts here are o200k's, which the calibrator
# scales (Claude's count of English text runs ~5-15% above o200k's).
_CLAUDE = Rendering(
    message=3,
    reply=4,
    roles=False,
    tools=346,
    tools_forced=313,
    call_in=26,
    result_in=25,
    call_out=25,
    tool_turn=22,
    reply_out=3,
    thinking=29,
    structured=150,
)
# Everything else (Llama, Qwen, Mistral, DeepSeek, Gemini, ...): the chat-template
# framing of ChatML-like formats, JSON tool definitions, and nothing known besides.
_OPEN = Rendering(message=3, reply=3, call_in=3, result_in=3, call_out=5)
# Llama 3.1 and later: Meta's chat template always opens with a system header that
# carries "Cutting Knowledge Date: December 2023\nToday Date: ..." (llama-models'
# prompt format): 25 tokens. Llama 4 on Groq adds ~650 tokens of tool-use instructions
# when tools are given, and a call costs ~20 over its name and arguments (measured on
# 6 exchanges of llama-4-scout).
_LLAMA3 = _OPEN._replace(fixed=25)
_LLAMA4 = _OPEN._replace(tools=650, call_out=20)
# DeepSeek's chat template introduces tools with ~200 tokens of instructions ("## Tools",
# the tool-call format) and wraps each call in its own markers (~30 tokens); its
# Responses API adds a 76-token system prompt to every request and ~210 with tools
# (measured on 3 chat and 14 Responses exchanges).
_DEEPSEEK = _OPEN._replace(tools=200, call_out=30)
_DEEPSEEK_RESPONSES = _DEEPSEEK._replace(fixed=76, tools=210)

# Claude models whose tool-use system prompt differs from the Claude 4 default: Claude 3
# as documented; Claude 4.5 and later as measured (500 for auto/none, 600 for any/tool,
# on 30+ recorded exchanges of Sonnet 4.5, Haiku 4.5 and Sonnet 4.6; the documentation's
# table stops at 346/313).
_CLAUDE_TOOLS = [
    (re.compile(r"claude-3-opus"), 530, 281),
    (re.compile(r"claude-3-sonnet"), 159, 235),
    (re.compile(r"claude-3-(5-)?haiku"), 264, 340),
    (re.compile(r"claude-(opus|sonnet|haiku)-(4-[5-9]|[5-9])"), 500, 600),
]


def rendering(model: str | None, style: str) -> Rendering:
    """The rendering a model's provider bills, told by the model's name."""
    name = (model or "").lower().rsplit("/", 1)[-1]  # "openai/gpt-oss-120b" from a router
    if style == ANTHROPIC or name.startswith("claude"):
        for pattern, auto, forced in _CLAUDE_TOOLS:
            if pattern.match(name):
                return _CLAUDE._replace(tools=auto, tools_forced=forced)
        return _CLAUDE
    if name.startswith("gpt-oss"):
        return _HARMONY
    if re.match(r"o\d|gpt-5|codex", name):
        return _O_SERIES_RESPONSES if style == RESPONSES else _O_SERIES
    if name.startswith(("gpt-", "chatgpt-")):
        return _GPT_RESPONSES if style == RESPONSES else _GPT
    if re.match(r"llama-?3\.[1-9]", name):
        return _LLAMA3
    if name.startswith("llama-4"):
        return _LLAMA4
    if name.startswith("deepseek"):
        return _DEEPSEEK_RESPONSES if style == RESPONSES else _DEEPSEEK
    return _OPEN


def json_tools(tools: list[dict]) -> str:
    """Tool definitions as JSON, the way Claude and open models' chat templates show them."""
    return "\n".join(json.dumps(tool, ensure_ascii=False) for tool in tools)


def typescript(tools: list[dict]) -> str:
    """Tool definitions as OpenAI models see them: a TypeScript namespace (reconstructed by
    hmarr/openai-chat-tokens and exact to the token on OpenAI's own examples)."""
    lines = ["namespace functions {", ""]
    for tool in tools:
        description = tool.get("description")
        if isinstance(description, str) and description:
            lines.append(f"// {description}")  # one "//", however many lines it has
        parameters = tool.get("parameters")
        if isinstance(parameters, dict) and isinstance(parameters.get("properties"), dict) and parameters["properties"]:
            lines += [f"type {tool.get('name')} = (_: {{", _ts_properties(parameters, 0), "}) => any;"]
        else:
            lines.append(f"type {tool.get('name')} = () => any;")
        lines.append("")
    lines.append("} // namespace functions")
    return "\n".join(lines)


def _ts_properties(schema: dict, indent: int) -> str:
    required = as_list(schema.get("required"))
    lines = []
    for name, prop in schema["properties"].items():
        if isinstance(prop, dict) and isinstance(prop.get("description"), str) and prop["description"]:
            lines.append(f"// {prop['description']}")
        lines.append(f"{name}{'' if name in required else '?'}: {_ts_type(prop, indent)},")
    return "\n".join(" " * indent + line for line in lines)


def _ts_type(prop: object, indent: int, depth: int = 0) -> str:
    if not isinstance(prop, dict) or depth > 8:
        return "any"
    if isinstance(prop.get("enum"), list):
        return " | ".join(json.dumps(value) for value in prop["enum"])
    for union in ("anyOf", "oneOf"):
        if isinstance(prop.get(union), list):
            return " | ".join(_ts_type(option, indent, depth + 1) for option in prop[union])
    kind = prop.get("type")
    if isinstance(kind, list):
        return " | ".join(_ts_type({**prop, "type": k}, indent, depth + 1) for k in kind)
    if kind == "object" and isinstance(prop.get("properties"), dict) and prop["properties"]:
        return "{\n" + _ts_properties(prop, indent + 2) + "\n" + " " * indent + "}"
    if kind == "array":
        return _ts_type(prop.get("items"), indent, depth + 1) + "[]" if isinstance(prop.get("items"), dict) else "any[]"
    return {"integer": "number"}.get(kind, kind) if isinstance(kind, str) else "any"


def parallel(calls: tuple[tuple[str, str], ...] | list[tuple[str, str]]) -> str:
    """Parallel calls as GPT-4-era models write them: one call of `multi_tool_use.parallel`."""
    uses = ",".join(
        f'{{"recipient_name":"functions.{name}","parameters":{arguments or "{}"}}}' for name, arguments in calls
    )
    return f'{{"tool_uses":[{uses}]}}'
