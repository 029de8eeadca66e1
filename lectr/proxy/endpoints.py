"""Request paths in, upstream URLs out.

A client reaches Lectr with an OpenAI-style path (`/v1/chat/completions`, Groq's
`/openai/v1/...`, Gemini's `/v1beta/openai/...`), Anthropic's native `/v1/messages`, or
Azure's `/openai/deployments/{deployment}/...`. `parse_path` reduces each to the part
every provider shares (`/chat/completions`), so a request can be re-addressed to any
provider by `upstream_url`; a path only one provider uses names that provider. Pure
functions, no I/O.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from urllib.parse import quote

from lectr.common.providers import PROVIDERS

CHAT = "/chat/completions"
MESSAGES = "/messages"
RESPONSES = "/responses"

# Longest first: "/openai/v1" must win over "/v1". With the provider each names: "/v1"
# is everyone's (OpenAI, Mistral, DeepSeek, xAI, ...), the model decides there.
_OPENAI_ROOTS = (("/v1beta/openai", "gemini"), ("/openai/v1", "groq"), ("/v1", None))
_AZURE = re.compile(r"^/openai/deployments/([^/]+)(/.*)$")
# Azure's paths without a deployment (the model is in the body): `/openai/responses?api-version=...`
# as AzureOpenAI clients send it. "/openai/v1/..." is Groq's root, and Azure's v1 API too: the
# model (or the intercepted host) decides there.
_AZURE_PLAIN = re.compile(r"^/openai(/(?!v1/|deployments/)[^/].*)$")


@dataclass(frozen=True, slots=True)
class Endpoint:
    suffix: str  # the provider-independent part: "/chat/completions", "/messages", "/embeddings", ...
    query: str = ""  # the query string, without "?"
    native: str | None = None  # "anthropic" or "azure" when the path is that provider's own format
    deployment: str | None = None  # Azure deployment named in the path
    provider: str | None = None  # the provider the path belongs to, when only one uses it

    @property
    def routable(self) -> bool:
        """Whether routing rules apply: chat completions and the Responses API anywhere, native
        messages within Anthropic."""
        return (
            self.suffix == CHAT or self.suffix == RESPONSES or (self.native == "anthropic" and self.suffix == MESSAGES)
        )


# A service sends a handful of paths, each many times: both parsers are cached. Only short
# strings, though: mitmproxy sets no limit on a request line, and 4096 cached paths of a
# megabyte each would be 4 GB held for anyone who sends them (before any key is checked).
CACHED_MAX_LENGTH = 1024


def parse_path(path: str) -> Endpoint | None:
    """The endpoint a request path addresses, or None when it is not an LLM API path."""
    return _parse_path_cached(path) if len(path) <= CACHED_MAX_LENGTH else _parse_path(path)


def _parse_path(path: str) -> Endpoint | None:
    path_only, _, query = path.partition("?")
    azure = _AZURE.match(path_only)
    if azure:
        return Endpoint(azure[2], query, native="azure", deployment=azure[1], provider="azure")
    azure = _AZURE_PLAIN.match(path_only)
    if azure:
        return Endpoint(azure[1], query, native="azure", provider="azure")
    if path_only == "/v1/messages" or path_only.startswith("/v1/messages/"):
        return Endpoint(path_only[len("/v1") :], query, native="anthropic", provider="anthropic")
    for root, provider in _OPENAI_ROOTS:
        if path_only.startswith(root + "/"):
            return Endpoint(path_only[len(root) :], query, provider=provider)
    return None


_parse_path_cached = functools.lru_cache(maxsize=4096)(_parse_path)


@dataclass(frozen=True, slots=True)
class Upstream:
    scheme: str
    host: str
    port: int
    path: str  # with query string


def upstream_url(
    base_url: str,
    provider: str,
    endpoint: Endpoint,
    azure_api_version: str | None = None,
    azure_deployment: str | None = None,
) -> str:
    """The full upstream URL for `endpoint` at `provider`, whose base URL is `base_url`."""
    if provider == "azure":
        if endpoint.native == "azure" and endpoint.deployment is None:  # as the client addressed it
            return f"{base_url}/openai{endpoint.suffix}" + (f"?{endpoint.query}" if endpoint.query else "")
        if endpoint.suffix == RESPONSES:
            # Azure's Responses API has no deployment in the path (it is the body's model), and
            # its v1 path needs no api-version.
            return f"{base_url}/openai/v1{endpoint.suffix}"
        deployment = azure_deployment or endpoint.deployment
        if not deployment:
            raise ValueError("an Azure request needs a deployment: configure deployments for the model")
        query = endpoint.query if endpoint.native == "azure" and endpoint.query else ""
        if not query and azure_api_version:
            query = f"api-version={quote(azure_api_version)}"
        url = f"{base_url}/openai/deployments/{quote(deployment, safe='')}{endpoint.suffix}"
    else:
        url = base_url + PROVIDERS[provider].openai_path + endpoint.suffix
        query = endpoint.query if endpoint.native != "azure" else ""
    return f"{url}?{query}" if query else url


def split_url(url: str) -> Upstream:
    """Break an absolute http(s) URL into what mitmproxy needs to address a request."""
    return _split_url_cached(url) if len(url) <= CACHED_MAX_LENGTH else _split_url(url)


# DOTALL: the path part is whatever follows the host, every character of it.
_URL = re.compile(r"^(https?)://(\[[^\]]+\]|[^/:]+)(?::([0-9]+))?(/.*)?$", re.DOTALL)


def _split_url(url: str) -> Upstream:
    match = _URL.match(url)
    if not match:
        raise ValueError(f"not an absolute http(s) URL: {url!r}")
    scheme, host, port, path = match.groups()
    return Upstream(
        scheme,
        host.strip("[]"),
        int(port) if port else (443 if scheme == "https" else 80),
        path or "/",
    )


_split_url_cached = functools.lru_cache(maxsize=4096)(_split_url)
