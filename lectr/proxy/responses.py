"""Error responses that Lectr itself gives, in a shape every provider SDK understands.

OpenAI's SDKs read `error.message` / `error.type` / `error.code`; Anthropic's read the
top-level `type: "error"` and `error.type` / `error.message`. One body satisfies both:

    {"type": "error", "error": {"type": "...", "code": "...", "message": "Lectr: ..."}}
"""

from __future__ import annotations

import json

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
}


def error_body(status: int, message: str, code: str) -> bytes:
    error = {"type": ERROR_TYPES.get(status, "api_error"), "code": code, "message": f"Lectr: {message}"}
    return json.dumps({"type": "error", "error": error}).encode()


JSON_HEADERS = {"content-type": "application/json", "x-lectr-error": "1"}
