"""Which failures of a routed request call for the original request instead.

Pure. A rule changed the model (or the provider) of a request, and the target answered
with an error before anything reached the client. Lectr then sends the original request
(lectr.proxy.addons.fallback) when the failure is one the rule may have caused, or one the
original provider may not share:
- the model is not found, or not allowed (404; 400 naming the model or its context);
- the key was refused (401, 403): Lectr's own key for a switched-to provider, or a
  client's key without access to the target model;
- the target is overloaded or failing (408, 409, 429, 5xx, Anthropic's 529).
Any other error (a 400 about the request itself, 413, 422) would fail the original too:
the client gets it as it came.
"""

from __future__ import annotations

import json

# Statuses that may call for a fallback; a 400 only when its body blames the model.
_ALWAYS = frozenset((401, 403, 404, 408, 409, 429))
# Words of a 400's error that blame the model rather than the request: OpenAI's
# model_not_found and context_length_exceeded, Groq's model_decommissioned, Gemini's
# "models/x is not found", Anthropic's "model: x", and "does not support tools" and the like.
_MODEL_WORDS = ("model", "context", "not found", "not supported", "does not support", "unsupported")
MESSAGE_MAX = 200  # characters of the provider's error message kept for the log and the row


def may_fall_back(status: int) -> bool:
    """Whether a response with this status might be fallen back from (its body decides a 400)."""
    return status in _ALWAYS or status == 400 or status >= 500


def failure(status: int, body: bytes | None) -> str | None:
    """Why this response calls for the original request ("404 model_not_found: ..."), or None."""
    if not may_fall_back(status):
        return None
    code, message = _error(body)
    text = f"{code} {message}".lower()
    if status == 400 and not any(word in text for word in _MODEL_WORDS):
        return None
    detail = ": ".join(part for part in (code, message) if part)
    return f"{status} {detail}" if detail else str(status)


def _error(body: bytes | None) -> tuple[str, str]:
    """The error's code (or type) and message, in OpenAI's, Anthropic's or Gemini's shape."""
    try:
        value = json.loads(body) if body else None
    except (ValueError, RecursionError):
        return "", _short(body.decode("utf-8", "replace") if body else "")
    if isinstance(value, list) and value and isinstance(value[0], dict):  # Gemini: [{"error": {...}}]
        value = value[0]
    error = value.get("error") if isinstance(value, dict) else None
    if isinstance(error, str):
        return "", _short(error)
    if not isinstance(error, dict):
        return "", ""
    code = next((v for v in (error.get("code"), error.get("type"), error.get("status")) if isinstance(v, str)), "")
    message = error.get("message")
    return code, _short(message if isinstance(message, str) else "")


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MESSAGE_MAX else text[: MESSAGE_MAX - 1] + "…"
