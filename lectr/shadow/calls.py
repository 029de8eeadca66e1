"""One shadow request: the candidate's body, built from the live one, and the HTTP call.

The body is the client's, with the candidate's model and without streaming ("stream",
"stream_options"): the same parameters, one answer to compare. It is sent with `"store": false`
where the API stores answers (the Responses API; chat completions that asked for it), so the
candidate's provider keeps no copy under Lectr's key; and a request that refers to what is kept
under the client's key (a stored conversation or prompt) is not sent.

Redirects are not followed (the request carries Lectr's key), and what an error keeps is its
type, never its text.

What is kept of a failure is its status and the provider's error code or type, never its
message: a provider may quote the prompt back in it, and prompts are never stored.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import NamedTuple

from lectr.common.decompress import decoded
from lectr.common.jsonbody import parse_json

# Responses API fields naming what lives in the client's account, which Lectr's key cannot reach.
_CLIENTS_OWN = ("previous_response_id", "conversation", "prompt")


class Unsupported(Exception):
    """This request cannot be shadowed; the message says why (it is stored)."""


class Reply(NamedTuple):
    status: int | None  # None: no response (refused, timed out)
    body: bytes
    error: str | None  # for the row: "HTTP 429 rate_limit_exceeded", "timed out", ...


def candidate_body(request_body: bytes | None, encoding: str, endpoint: str | None, model: str) -> bytes:
    data = decoded(request_body, encoding or None) if request_body else None
    body = parse_json(data)
    if not isinstance(body, dict):
        raise Unsupported("the request body was not kept (over 1 MB) or is not a JSON object")
    for key in _CLIENTS_OWN:
        if body.get(key):
            raise Unsupported(f"it refers to what is stored under the client's key ({key})")
    body = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
    body["model"] = model
    if endpoint == "/responses" or "store" in body:
        body["store"] = False
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs) -> None:  # a 3xx is the candidate's error, not a new address
        return None


# Straight to the provider, as the proxy's own upstream connections go: no HTTP(S)_PROXY from the
# environment; and no redirects, which would carry Lectr's key wherever they point.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects())


def send(url: str, headers: tuple[tuple[str, str], ...], body: bytes, timeout: float) -> Reply:
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            raw = response.read()
            return Reply(response.status, decoded(raw, response.headers.get("content-encoding")) or raw, None)
    except urllib.error.HTTPError as e:
        raw = e.read()
        return Reply(e.code, raw, f"HTTP {e.code} {error_code(raw)}".rstrip())
    except TimeoutError:
        return Reply(None, b"", f"no answer within {timeout:g} s")
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        return Reply(None, b"", f"could not reach {urllib.parse.urlsplit(url).netloc}: {type(reason).__name__}")
    except (http.client.HTTPException, ValueError) as e:  # an answer cut short; a header http.client refuses
        return Reply(None, b"", f"the request or its answer failed: {type(e).__name__}")


def error_code(body: bytes) -> str:
    """The error's code or type in OpenAI's, Anthropic's or Gemini's shape: never its message."""
    value = parse_json(body)
    if isinstance(value, list) and value and isinstance(value[0], dict):
        value = value[0]
    error = value.get("error") if isinstance(value, dict) else None
    if not isinstance(error, dict):
        return ""
    for key in ("code", "type", "status"):
        if isinstance(error.get(key), str):
            return error[key][:80]
    return ""
