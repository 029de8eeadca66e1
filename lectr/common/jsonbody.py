"""JSON request and response bodies: read without raising, rewritten without losing anything.

Pure. The router rewrites a request's `model` (hot path); the writer reads the bodies it
meters (cold path). Python's JSON drops or changes what a provider may still read
(duplicate keys, huge numbers, NaN), so a rewrite that would change more than it was asked
to is refused and the body goes unchanged.
"""

from __future__ import annotations

import json


def parse_json(data: bytes | None) -> object:
    """A body as JSON, or None when it is empty or not JSON (never raises)."""
    if not data:
        return None
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return None


def unreadable_reason(data: bytes) -> str | None:
    """Why a body `parse_json` gave up on is JSON all the same, or None when it is not JSON.

    Python's parser stops where JSON itself does not: at its recursion limit, and at
    integers of more than 4300 digits. Such a body is forwarded unread, and the reason
    recorded, because it is Lectr's limit and not the client's mistake.
    """
    nested = "the JSON body is nested too deeply for Lectr to read it"
    try:
        json.loads(data, parse_int=len)  # no int() call: no digit limit
    except RecursionError:
        return nested
    except ValueError:
        return None  # not JSON
    try:
        json.loads(data)
    except RecursionError:
        return nested
    except ValueError:  # readable but for its integers
        return "the JSON body has an integer too long for Lectr to read it"
    return None  # readable after all: `null`


def rewrite_json(data: bytes, changes: dict) -> bytes | None:
    """The JSON object `data` with top-level `changes` applied, or None when a rewrite
    would change more than `changes` (the caller then forwards the body unchanged).

    A parse and a dump lose what Python's JSON cannot carry through: of duplicate keys,
    all but the last (a provider may read the first); numbers beyond a float's range,
    which load as inf and would be written as `Infinity`, not JSON; NaN and Infinity
    literals. A lone surrogate escape ("\\ud800") is kept as an escape.
    """
    try:
        body = json.loads(data, object_pairs_hook=_unique_keys)
        if not isinstance(body, dict):
            return None
        body.update(changes)
        try:
            return json.dumps(body, ensure_ascii=False, allow_nan=False).encode()
        except UnicodeEncodeError:  # a lone surrogate: escaped, as the client sent it
            return json.dumps(body, allow_nan=False).encode()
    except (ValueError, RecursionError):
        return None


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    value = dict(pairs)
    if len(value) != len(pairs):
        raise ValueError("duplicate keys")
    return value
