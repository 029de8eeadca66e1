"""Whether a candidate model's answer says what the live answer said: one comparison per kind of task.

Pure. Each comparison gives a score from 0 to 1 and whether the two answers agree; the
thresholds below turn a score into agreement. They are starting points, named so they
can be calibrated on recorded pairs:

- Labels (classification) agree only when equal once normalised: a label is right or
  wrong, there is no partly the same class.
- Extractions agree when at least FIELDS_AGREE (0.9) of their fields are equal: one field
  in ten written differently (a formatting the normalisation did not catch) is still the
  same extraction, two are not. With fewer than ten fields, every field must be equal.
- Texts (summaries, generation, reasoning, anything else) agree when their ROUGE-L F1
  over words is at least TEXT_AGREES (0.6): a rewording of the same answer keeps most of
  its words in order, a different answer on the same topic shares mostly the small
  words. And only when the candidate is between half and twice as long (LENGTH_RATIO):
  F1 alone passes an answer cut to half its length (F1 0.67), and a short answer padded
  to twice.
- Tool calls agree only when every call is the same function with equal arguments: a
  different call does something else.
"""

from __future__ import annotations

import json
import re
from typing import NamedTuple, Sequence

from rapidfuzz.distance import LCSseq

from lectr.shadow.answers import Answer


class Comparison(NamedTuple):
    kind: str  # "label" | "fields" | "text" | "tool_calls"
    score: float  # 0..1
    agreed: bool
    length_ratio: float | None = None  # text only: candidate words / current words (None when current has none)


TEXT_AGREES = 0.6  # ROUGE-L F1 at or above which two texts say the same
LENGTH_RATIO = (0.5, 2.0)  # a text agrees only when the candidate's length is within this ratio of the current's
FIELDS_AGREE = 0.9  # share of extracted fields equal at or above which two extractions agree


def compare(task: str | None, current: Answer, candidate: Answer) -> Comparison:
    """The comparison the task calls for; tool calls, when either answer made some, whatever the task."""
    if current.calls or candidate.calls:
        return tool_calls(current.calls, candidate.calls)
    kind = task.strip().casefold() if isinstance(task, str) else ""
    if kind == "classification":
        return label(current.text, candidate.text)
    if kind == "extraction":
        return fields(current.text, candidate.text)
    return text(current.text, candidate.text)


def label(current: str, candidate: str) -> Comparison:
    """Two labels, equal once normalised: score 1.0 or 0.0."""
    agreed = _label(current) == _label(candidate)
    return Comparison("label", 1.0 if agreed else 0.0, agreed)


def fields(current: str, candidate: str) -> Comparison:
    """Two JSON extractions, field by field: the share of paths (over both) whose values are equal.

    A current answer that is not JSON is compared as text; a candidate that is not, when the
    current one is, failed the task.
    """
    mine = _parse(current)
    if mine is None:
        return text(current, candidate)
    theirs = _parse(candidate)
    if theirs is None:
        return Comparison("fields", 0.0, False)
    score = _share_equal(_flatten(mine), _flatten(theirs))
    return Comparison("fields", score, score >= FIELDS_AGREE)


_WORD = re.compile(r"\w+")


def text(current: str, candidate: str) -> Comparison:
    """ROUGE-L F1 over words (casefolded), and the candidate's length against the current's."""
    mine, theirs = _WORD.findall(current.casefold()), _WORD.findall(candidate.casefold())
    if not mine and not theirs:
        return Comparison("text", 1.0, True)
    ratio = len(theirs) / len(mine) if mine else None
    lcs = LCSseq.similarity(mine, theirs) if mine and theirs else 0
    # P = lcs/len(theirs), R = lcs/len(mine): F1 = 2PR/(P+R) = 2 lcs/(len(mine) + len(theirs)).
    score = 2 * lcs / (len(mine) + len(theirs))
    in_range = ratio is None or LENGTH_RATIO[0] <= ratio <= LENGTH_RATIO[1]
    return Comparison("text", score, score >= TEXT_AGREES and in_range, ratio)


def tool_calls(current: Sequence[tuple[str, str]], candidate: Sequence[tuple[str, str]]) -> Comparison:
    """Calls paired in order: the share that are the same function with equal arguments."""
    longest = max(len(current), len(candidate))
    if not longest:
        return Comparison("tool_calls", 1.0, True)
    matched = sum(
        1
        for (name, arguments), (their_name, their_arguments) in zip(current, candidate)
        if name == their_name and _arguments(arguments) == _arguments(their_arguments)
    )
    score = matched / longest
    return Comparison("tool_calls", score, score == 1.0)


_QUOTES = "\"'`"


def _label(answer: str) -> str:
    """A label normalised: a one-string JSON object read as its string ({"label": "Billing"}),
    quotes, backticks, whitespace and trailing . ! , stripped, casefolded. A "Label: x" prefix is kept."""
    value = _parse(answer)
    if isinstance(value, dict) and len(value) == 1:
        (only,) = value.values()
        if isinstance(only, str):
            answer = only
    previous = None
    while answer != previous:  # '"Billing."' and 'Billing."' alike
        previous = answer
        answer = answer.strip().strip(_QUOTES).rstrip(".!,")
    return " ".join(answer.casefold().split())


# Models often wrap JSON in a fenced block, with or without prose around it.
_FENCE = re.compile(r"```(?:json\b)?\s*(.*?)\s*```", re.DOTALL | re.IGNORECASE)


def _parse(answer: str) -> dict | list | None:
    """The JSON object or array an answer is, or the first fenced block in it holds; else None."""
    value = _loads(answer)
    if value is None and (fence := _FENCE.search(answer)):
        value = _loads(fence[1])
    return value


def _loads(answer: str) -> dict | list | None:
    try:
        value = json.loads(answer)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than Python parses
        return None
    return value if isinstance(value, (dict, list)) else None


def _flatten(value: object) -> dict[str, tuple]:
    """Every leaf by its path ("a.b", "items[0].name"); an empty object or array is a leaf.
    Iterative: a JSON document nested as deep as the parser allows must not overflow here."""
    leaves: dict[str, tuple] = {}
    stack: list[tuple[str, object]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, dict) and item:
            stack.extend((f"{path}.{key}" if path else str(key), v) for key, v in item.items())
        elif isinstance(item, list) and item:
            stack.extend((f"{path}[{i}]", v) for i, v in enumerate(item))
        else:
            leaves[path] = _leaf(item)
    return leaves


def _leaf(value: object) -> tuple:
    """A value normalised, tagged with its kind: a bool is not the number 1, nor "3" the number 3."""
    if isinstance(value, str):
        return ("string", value.strip().casefold())
    if isinstance(value, bool) or value is None:
        return ("constant", value)
    if isinstance(value, (int, float)):
        try:
            return ("number", float(value))  # 3 == 3.0
        except OverflowError:  # an integer past any float: compared as it is
            return ("number", value)
    return ("empty", type(value).__name__)  # {} or []


def _share_equal(mine: dict[str, tuple], theirs: dict[str, tuple]) -> float:
    paths = mine.keys() | theirs.keys()
    if not paths:
        return 1.0
    return sum(1 for path in paths if path in mine and path in theirs and mine[path] == theirs[path]) / len(paths)


def _arguments(arguments: str) -> object:
    """A call's arguments as flattened, normalised JSON; as stripped text when they are not JSON."""
    stripped = arguments.strip() or "{}"  # no arguments is an empty object, as the APIs send it
    try:
        return _flatten(json.loads(stripped))
    except (ValueError, RecursionError):
        return stripped
