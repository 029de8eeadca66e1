"""Request headers: Lectr's metadata headers, and auth headers normalised per provider.

The functions work on header fields as mitmproxy holds them (`Headers.fields`): a tuple
of (name, value) byte pairs, names in any case. One pass each: mitmproxy's mapping view
rescans every field per lookup, which made these the costliest lines of the hot path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lectr.common.providers import ANTHROPIC_VERSION, PROVIDERS

Fields = tuple[tuple[bytes, bytes], ...]

LECTR_PREFIX = b"x-lectr-"
AUTH_HEADERS = (b"authorization", b"x-api-key", b"api-key")


@dataclass(frozen=True, slots=True)
class LectrHeaders:
    key: str | None = None
    feature: str | None = None
    task: str | None = None
    provider: str | None = None


def split_lectr_headers(fields: Fields) -> tuple[LectrHeaders, Fields]:
    """What the X-Lectr-* headers said, and the fields without them (the provider never sees them)."""
    found: dict[bytes, str] = {}
    kept = []
    for name, value in fields:
        lower = name.lower()
        if lower.startswith(LECTR_PREFIX):
            text = _text(value).strip()
            if text:
                found[lower[len(LECTR_PREFIX) :]] = text
        else:
            kept.append((name, value))
    if not found and len(kept) == len(fields):
        return LectrHeaders(), fields
    return (
        LectrHeaders(
            key=found.get(b"key"),
            feature=found.get(b"feature"),
            task=found.get(b"task"),
            provider=found.get(b"provider", "").lower() or None,
        ),
        tuple(kept),
    )


def client_credential(fields: Fields) -> str | None:
    """The provider key the client sent, in whichever provider's header it used."""
    for name, value in fields:
        lower = name.lower()
        if lower == b"authorization":
            scheme, _, token = _text(value).partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
        elif lower in AUTH_HEADERS and value.strip():
            return _text(value).strip()
    return None


def with_provider_auth(fields: Fields, provider: str, key: str | None) -> Fields:
    """The fields with whatever auth header they carry replaced by the one `provider` expects."""
    kept = [(n, v) for n, v in fields if n.lower() not in AUTH_HEADERS]
    if key:
        style = PROVIDERS[provider].auth
        # surrogateescape: a client's key that is not UTF-8 goes on as the bytes it was (_text).
        value = (f"Bearer {key}" if style == "authorization" else key).encode("utf-8", "surrogateescape")
        kept.append((style.encode(), value))
    if provider == "anthropic" and not any(n.lower() == b"anthropic-version" for n, _ in kept):
        kept.append((b"anthropic-version", ANTHROPIC_VERSION.encode()))
    return tuple(kept)


# RFC 9110 5.5: CR, LF and NUL are never valid in a field value, and a proxy that passes
# them on lets a lenient server read one request as two. mitmproxy checks names only.
_FORBIDDEN_IN_VALUE = re.compile(rb"[\r\n\x00]")


def invalid_field(fields: Fields) -> bytes | None:
    """The name of the first field whose value holds CR, LF or NUL, or None when all are sound."""
    for name, value in fields:
        if _FORBIDDEN_IN_VALUE.search(value):
            return name
    return None


def _text(value: bytes) -> str:
    return value.decode("utf-8", "surrogateescape")
