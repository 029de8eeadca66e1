"""What the simulator answers in its task-answers mode: per task, from the prompt and the model.

Pure functions of a request's body and a model's name, so that a test knows the truth: the true
answer depends only on the prompt; a model told to disagree on a share of a task's prompts
answers those otherwise, and reliably differently. scripts/simulator.py documents the
convention (how a request's task is read, which answer each task gets); its handlers only
put an `Answer` into each provider's wire format.
"""

from __future__ import annotations

import datetime
import hashlib
import itertools
import json
import re
from collections.abc import Iterator
from typing import NamedTuple

TASKS = ("classification", "extraction", "summarisation", "generation", "reasoning", "tool_call")
# The system prompt's first word, lower-cased and without punctuation, names the task.
_FIRST_WORDS = {
    "classify": "classification",
    "extract": "extraction",
    "summarise": "summarisation",
    "summarize": "summarisation",
    "reason": "reasoning",
}
DEFAULT_LABELS = ("billing", "technical", "account", "other")
_LABELS = re.compile(r"labels:[ \t]*([^\n]+)", re.IGNORECASE)
_NAMES = (
    "Ada Lovelace",
    "Alan Turing",
    "Grace Hopper",
    "Edsger Dijkstra",
    "Barbara Liskov",
    "Donald Knuth",
    "Margaret Hamilton",
    "Ken Thompson",
)
_CITIES = ("Lyon", "Porto", "Oslo", "Krakow", "Dublin", "Turin", "Ghent", "Malmo")
_FIELDS = ("name", "city", "amount", "date")
_FIRST_DATE = datetime.date(2024, 1, 1)
VOCABULARY = tuple(
    """
    about above across after again against air all almost along also always among and animal
    another answer any area around ask away back became because been before began behind being
    below best better between big black body book both bring build call came can car carry
    change city clear close cold come common country course cover cross cut dark day deep did
    different does done door down draw during each early earth east easy eat end enough even
    ever every example face fact fall family far farm fast father feel few field fill find fire
    first fish five follow food foot form found four free friend from front full game gave give
    good great green ground group grow half hand hard have head hear heart heavy help here high
    hold home horse hot hour house idea important inside island just keep kind king land large
    last late learn leave left letter light line list little live long look love low machine
    made make many mark may mean measure might mile mind money moon more morning most mother
    mountain move much music name near need never new next night north note now number ocean
    often open order paper part people place
    """.split()
)
_SALT = "disagree"  # seeds the answer a disagreeing model gives


class Disagreement(NamedTuple):
    """One `--disagree MODEL:TASK=SHARE[,TASK=SHARE...]`: the share of each task's prompts MODEL answers otherwise."""

    model: str
    shares: dict[str, float]


class Answer(NamedTuple):
    task: str
    text: str = ""  # the answer's text; "" for a tool call
    tool: str | None = None  # the called function's name
    arguments: str = ""  # the call's arguments, a JSON object's text

    def chunks(self) -> list[str]:
        """The text, or the call's arguments, in word chunks as a stream sends them: they join to it."""
        pieces = (self.arguments if self.tool else self.text).split(" ")
        return [piece if i == 0 else " " + piece for i, piece in enumerate(pieces)]

    @property
    def tokens(self) -> int:
        """Output tokens: a word each; a call's arguments at about four characters a token."""
        if self.tool:
            return max(1, (len(self.arguments) + 3) // 4)
        return len(self.text.split())


# --- configuration ---------------------------------------------------------------------------

_DISAGREE_FORM = "MODEL:TASK=SHARE[,TASK=SHARE...], e.g. gpt-4o-mini:classification=0.03,extraction=0.3"


def parse_disagree(spec: str) -> Disagreement:
    """`MODEL:TASK=SHARE[,TASK=SHARE...]`; a ValueError that says how to fix it otherwise.

    The model is everything before the last colon (fine-tuned models' names hold colons)."""
    model, colon, pairs = spec.rpartition(":")
    if not colon or not model.strip() or not pairs.strip():
        raise ValueError(f"{spec!r}: write {_DISAGREE_FORM}")
    shares = {}
    for pair in pairs.split(","):
        task, equals, share = (part.strip() for part in pair.partition("="))
        if not equals:
            raise ValueError(f"{pair.strip()!r} in {spec!r} is not TASK=SHARE: write {_DISAGREE_FORM}")
        try:
            shares[task] = float(share)
        except ValueError:
            raise ValueError(f"share {share!r} of {task!r} in {spec!r}: write a number from 0 to 1, e.g. 0.3") from None
    return Disagreement(model.strip(), check_shares(model.strip(), shares))


def check_shares(model: str, shares: dict[str, float]) -> dict[str, float]:
    """The shares, once each is a known task's and from 0 to 1; a ValueError saying which is wrong."""
    for task, share in shares.items():
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r} for {model!r}: use one of {', '.join(TASKS)}")
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"share {share} of {task!r} for {model!r}: write a number from 0 to 1, e.g. 0.3")
    return dict(shares)


# --- reading a request -----------------------------------------------------------------------


def task_of(body: dict) -> str:
    """A tool call when the request offers named tools, else what the system prompt's first word says."""
    if tool_names(body):
        return "tool_call"
    words = system_prompt(body).split(maxsplit=1)
    first = re.sub(r"[^a-z]", "", words[0].lower()) if words else ""
    return _FIRST_WORDS.get(first, "generation")


def system_prompt(body: dict) -> str:
    """Responses' `instructions`, Anthropic's `system`, else the first system or developer message's text."""
    for key in ("instructions", "system"):
        if body.get(key):
            return _text(body[key])
    messages = body.get("messages") if isinstance(body.get("messages"), list) else body.get("input")
    for message in messages if isinstance(messages, list) else ():
        if isinstance(message, dict) and message.get("role") in ("system", "developer"):
            return _text(message.get("content"))
    return ""


def tool_names(body: dict) -> list[str]:
    """The request's function tools, by name: chat's tools[i].function.name, else tools[i].name."""
    tools = body.get("tools")
    names = []
    for tool in tools if isinstance(tools, list) else ():
        if isinstance(tool, dict):
            function = tool.get("function")
            name = function.get("name") if isinstance(function, dict) else tool.get("name")
            if isinstance(name, str) and name:
                names.append(name)
    return list(dict.fromkeys(names))


def prompt_key(body: dict) -> str:
    """What decides the answer: the conversation and the system prompt, not the model."""
    return json.dumps({key: body.get(key) for key in ("messages", "input", "system", "instructions")}, sort_keys=True)


def disagrees(model: str, prompt: str, share: float) -> bool:
    """Whether the model answers this prompt otherwise: true on about `share` of the prompts."""
    return _unit(f"{model}\0{prompt}") < share


# --- answering -------------------------------------------------------------------------------


def task_answer(body: dict, model: str, disagree: dict[str, dict[str, float]]) -> Answer:
    """The model's answer to the request: the truth, unless it disagrees on this prompt."""
    task = task_of(body)
    prompt = prompt_key(body)
    other = disagrees(model, prompt, disagree.get(model, {}).get(task, 0.0))
    if task == "tool_call":
        tool, arguments = _tool_call(tool_names(body), prompt, other)
        return Answer(task, tool=tool, arguments=arguments)
    if task == "classification":
        return Answer(task, _label(labels_of(system_prompt(body)), prompt, other))
    if task == "extraction":
        return Answer(task, json.dumps(_extraction(prompt, other)))
    return Answer(task, _words(f"{_SALT}\0{prompt}" if other else prompt))


def labels_of(system: str) -> tuple[str, ...]:
    """The labels a system prompt lists after "labels:" (two at least), else the default ones."""
    found = _LABELS.search(system)
    labels: dict[str, str] = {}  # distinct as Lectr compares labels: casefolded
    for label in found[1].split(",") if found else ():
        label = label.strip().strip("\"'`.")
        if label:
            labels.setdefault(label.casefold(), label)
    return tuple(labels.values()) if len(labels) >= 2 else DEFAULT_LABELS


def _label(labels: tuple[str, ...], prompt: str, other: bool) -> str:
    return labels[(_draw(prompt) + other) % len(labels)]


def _extraction(prompt: str, other: bool) -> dict:
    draws = _draws(prompt)
    name, city = _NAMES[next(draws) % len(_NAMES)], _CITIES[next(draws) % len(_CITIES)]
    amount, days = 10 + next(draws) % 9990, next(draws) % 730
    if other:  # two to four fields, in a row from one picked by the salted hash, are changed
        salted = _draws(f"{_SALT}\0{prompt}")
        first, count = next(salted) % 4, 2 + next(salted) % 3
        changed = {_FIELDS[(first + i) % 4] for i in range(count)}
        name = _next(_NAMES, name) if "name" in changed else name
        city = _next(_CITIES, city) if "city" in changed else city
        amount += (1 + next(salted) % 500) if "amount" in changed else 0
        days += (1 + next(salted) % 60) if "date" in changed else 0
    date = (_FIRST_DATE + datetime.timedelta(days=days)).isoformat()
    return {"name": name, "city": city, "amount": amount, "date": date}


def _words(seed: str) -> str:
    """20 to 40 words of the vocabulary, as a sentence."""
    draws = _draws(seed)
    words = [VOCABULARY[next(draws) % len(VOCABULARY)] for _ in range(20 + next(draws) % 21)]
    return " ".join(words).capitalize() + "."


def _tool_call(names: list[str], prompt: str, other: bool) -> tuple[str, str]:
    draws = _draws(prompt)
    name = names[next(draws) % len(names)]
    query = [VOCABULARY[next(draws) % len(VOCABULARY)] for _ in range(3)]
    if other and len(names) >= 2:
        name = _next(names, name)
    elif other:
        query[0] = _next(VOCABULARY, query[0])
    return name, json.dumps({"query": " ".join(query)})


def _next(items: tuple[str, ...] | list[str], item: str) -> str:
    return items[(items.index(item) + 1) % len(items)]


def _text(content: object) -> str:
    """A string, or the text of a list of text parts or blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _unit(seed: str) -> float:
    """A number in [0, 1) from the seed's hash."""
    return int(hashlib.sha256(seed.encode()).hexdigest()[:8], 16) / 2**32


def _draw(seed: str) -> int:
    return next(_draws(seed))


def _draws(seed: str) -> Iterator[int]:
    """An endless, deterministic series of 32-bit numbers from the seed's hashes."""
    for block in itertools.count():
        digest = hashlib.sha256(f"{seed}\0{block}".encode()).digest()
        for i in range(0, len(digest), 4):
            yield int.from_bytes(digest[i : i + 4], "big")
