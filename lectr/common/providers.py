"""The provider registry: who the providers are, how to recognise them, where they live.

Pure data and functions, no mitmproxy import. Everything the hot path needs to decide
"which provider, which URL, which auth header" is answered here from memory.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Mapping

DEFAULT_PROVIDER = "openai"
ANTHROPIC_VERSION = "2023-06-01"


@dataclass(frozen=True, slots=True)
class Provider:
    name: str
    base_url: str  # SDK-style base URL, as a client library would be configured
    auth: str  # the header the provider authenticates with: authorization | x-api-key | api-key
    hosts: tuple[str, ...] = ()  # hostnames that identify the provider in HTTPS_PROXY mode
    openai_path: str = ""  # where its OpenAI-compatible API sits below base_url


PROVIDERS: dict[str, Provider] = {
    p.name: p
    for p in (
        Provider("openai", "https://api.openai.com/v1", "authorization", ("api.openai.com",)),
        # Native /v1/messages, and the OpenAI-compatible endpoint at /v1/chat/completions.
        Provider("anthropic", "https://api.anthropic.com", "x-api-key", ("api.anthropic.com",), "/v1"),
        Provider("groq", "https://api.groq.com/openai/v1", "authorization", ("api.groq.com",)),
        Provider(
            "gemini",
            "https://generativelanguage.googleapis.com/v1beta/openai",
            "authorization",
            ("generativelanguage.googleapis.com",),
        ),
        Provider("mistral", "https://api.mistral.ai/v1", "authorization", ("api.mistral.ai",)),
        Provider("deepseek", "https://api.deepseek.com/v1", "authorization", ("api.deepseek.com",)),
        Provider("xai", "https://api.x.ai/v1", "authorization", ("api.x.ai",)),
        # Azure has no global endpoint: each org configures its resource (see credentials.py).
        Provider("azure", "", "api-key"),
    )
}

_AZURE_HOST = re.compile(r"\.(openai\.azure\.com|cognitiveservices\.azure\.com|services\.ai\.azure\.com)$")
_HOSTS = {host: p.name for p in PROVIDERS.values() for host in p.hosts}

# Model-name prefixes, most specific first. Groq hosts the open-weight families.
_MODEL_PREFIXES: tuple[tuple[str, str], ...] = (
    ("gpt-", "openai"),
    ("chatgpt-", "openai"),
    ("o1", "openai"),
    ("o3", "openai"),
    ("o4", "openai"),
    ("text-embedding-", "openai"),
    ("omni-moderation", "openai"),
    ("claude-", "anthropic"),
    ("llama", "groq"),
    ("meta-llama/", "groq"),
    ("mixtral-", "groq"),
    ("gemma", "groq"),
    ("gemini-", "gemini"),
    ("mistral-", "mistral"),
    ("open-mistral", "mistral"),
    ("ministral-", "mistral"),
    ("codestral-", "mistral"),
    ("pixtral-", "mistral"),
    ("magistral-", "mistral"),
    ("devstral-", "mistral"),
    ("deepseek-", "deepseek"),
    ("grok-", "xai"),
)


def detect_provider(model: str) -> str | None:
    """The provider a model name belongs to, or None when the name is not recognised."""
    name = model.strip().lower()
    for prefix, provider in _MODEL_PREFIXES:
        if name.startswith(prefix):
            return provider
    return None


def provider_for_host(host: str) -> str | None:
    """The provider an intercepted hostname belongs to (HTTPS_PROXY mode), or None."""
    host = host.lower().rstrip(".")
    if host in _HOSTS:
        return _HOSTS[host]
    if _AZURE_HOST.search(host):
        return "azure"
    return None


def is_provider(name: str) -> bool:
    return name in PROVIDERS


def base_urls(env: Mapping[str, str] = os.environ) -> dict[str, str]:
    """Every provider's base URL, with `LECTR_<PROVIDER>_BASE_URL` overrides applied.

    Read once at start-up so the hot path never touches the environment.
    """
    return {name: env.get(f"LECTR_{name.upper()}_BASE_URL", p.base_url).rstrip("/") for name, p in PROVIDERS.items()}
