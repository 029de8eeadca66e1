"""Request headers: Lectr's metadata headers, and auth headers normalised per provider.

The functions take any mutable mapping of header names to values whose key lookups
ignore case (mitmproxy's `Headers`); they compare names case-insensitively themselves,
so a plain dict with lower-case names works too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import MutableMapping

from lectr.providers import ANTHROPIC_VERSION, PROVIDERS

LECTR_PREFIX = "x-lectr-"
AUTH_HEADERS = ("authorization", "x-api-key", "api-key")


@dataclass(frozen=True, slots=True)
class LectrHeaders:
    key: str | None = None
    feature: str | None = None
    task: str | None = None
    provider: str | None = None


def pop_lectr_headers(headers: MutableMapping[str, str]) -> LectrHeaders:
    """Remove every X-Lectr-* header (the provider never sees them) and return what they said."""
    found: dict[str, str] = {}
    for name in [n for n in headers.keys() if n.lower().startswith(LECTR_PREFIX)]:
        value = headers.pop(name).strip()
        if value:
            found[name.lower()[len(LECTR_PREFIX) :]] = value
    return LectrHeaders(
        key=found.get("key"),
        feature=found.get("feature"),
        task=found.get("task"),
        provider=found.get("provider", "").lower() or None,
    )


def client_credential(headers: MutableMapping[str, str]) -> str | None:
    """The provider key the client sent, in whichever provider's header it used."""
    for name in headers.keys():
        lower = name.lower()
        if lower == "authorization":
            scheme, _, token = headers[name].partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
        elif lower in ("x-api-key", "api-key") and headers[name].strip():
            return headers[name].strip()
    return None


def set_provider_auth(headers: MutableMapping[str, str], provider: str, key: str | None) -> None:
    """Replace whatever auth header the request carries by the one `provider` expects."""
    for name in [n for n in headers.keys() if n.lower() in AUTH_HEADERS]:
        del headers[name]
    if key:
        style = PROVIDERS[provider].auth
        headers[style] = f"Bearer {key}" if style == "authorization" else key
    if provider == "anthropic" and not any(n.lower() == "anthropic-version" for n in headers.keys()):
        headers["anthropic-version"] = ANTHROPIC_VERSION
