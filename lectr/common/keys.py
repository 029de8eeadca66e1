"""Lectr keys: how they look, how they are hashed, how a presented key is checked.

A key is `lk_<id>_<secret>`. The id is public (it names the key in listings and lets
the proxy find the stored hash without comparing against every key); the secret is 32
random bytes. Only SHA-256 of the whole key is stored: the secret is high-entropy, so
a slow password hash would add latency to every request without adding safety.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Iterable, Mapping

PREFIX = "lk_"


@dataclass(frozen=True, slots=True)
class NewKey:
    key_id: str
    key: str  # shown once, never stored
    key_hash: str


@dataclass(frozen=True, slots=True)
class StoredKey:
    key_id: str
    org_id: str
    key_hash: str


def generate_key() -> NewKey:
    key_id = secrets.token_hex(6)
    key = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    return NewKey(key_id, key, hash_key(key))


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


def key_id_of(key: str) -> str | None:
    if not key.startswith(PREFIX):
        return None
    key_id, sep, _ = key[len(PREFIX) :].partition("_")
    return key_id if sep and key_id else None


class KeyRing:
    """The active keys, in memory. Replaced whole when the stored keys change."""

    def __init__(self, keys: Iterable[StoredKey] = ()) -> None:
        self._by_id: Mapping[str, StoredKey] = {k.key_id: k for k in keys}

    def __len__(self) -> int:
        return len(self._by_id)

    def org_for(self, presented: str | None) -> str | None:
        """The org a presented key belongs to, or None. Hashes compared in constant time."""
        if not presented:
            return None
        stored = self._by_id.get(key_id_of(presented) or "")
        if stored is None:
            return None
        if hmac.compare_digest(hash_key(presented), stored.key_hash):
            return stored.org_id
        return None
