"""The proxy's own provider credentials and Azure settings, per org where configured.

When a rule moves a request to another provider, the client's key belongs to the old
one, so Lectr supplies the target's key from here. Sources, most specific first:
the secrets file's `orgs.<org>.providers.<provider>`, its `providers.<provider>`, then
the environment (`LECTR_<PROVIDER>_API_KEY`), and for Azure the proxy's options
`lectr_azure_base_url` and `lectr_azure_api_version` (their defaults: `LECTR_AZURE_*`).
Keys are held in memory only and never written anywhere.

Secrets file:

    providers:                    # for every org
      groq: {api_key: gsk-...}
      azure:
        api_key: ...
        endpoint: https://acme.openai.azure.com
        api_version: "2024-10-21"
        deployments: {gpt-4o: gpt4o-prod}   # model -> deployment; default: the model name
    orgs:
      acme:
        providers:
          anthropic: {api_key: sk-ant-...}
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from typing import Mapping

import yaml

from lectr.common.errors import LectrError
from lectr.common.providers import PROVIDERS

DEFAULT_AZURE_API_VERSION = "2024-10-21"
SECRETS_FILE = "secrets.yaml"  # where none is named (lectr_secrets, `lectr secrets --file`)
_SETTINGS_FIELDS = {"api_key", "endpoint", "api_version", "deployments"}


class CredentialsError(LectrError, ValueError):
    """The secrets file cannot be used; the message says where and why."""


@dataclass(frozen=True, slots=True)
class ProviderSettings:
    api_key: str | None = None
    endpoint: str | None = None  # Azure resource endpoint
    api_version: str | None = None  # Azure
    deployments: Mapping[str, str] = field(default_factory=dict)  # Azure: model -> deployment

    def merged_over(self, base: ProviderSettings) -> ProviderSettings:
        return ProviderSettings(
            api_key=self.api_key or base.api_key,
            endpoint=self.endpoint or base.endpoint,
            api_version=self.api_version or base.api_version,
            deployments={**base.deployments, **self.deployments},
        )


@dataclass(frozen=True, slots=True)
class Credentials:
    defaults: Mapping[str, ProviderSettings] = field(default_factory=dict)
    orgs: Mapping[str, Mapping[str, ProviderSettings]] = field(default_factory=dict)

    def settings(self, org: str | None, provider: str) -> ProviderSettings:
        base = self.defaults.get(provider, ProviderSettings())
        own = self.orgs.get(org or "", {}).get(provider)
        return own.merged_over(base) if own else base

    def api_key(self, org: str | None, provider: str) -> str | None:
        return self.settings(org, provider).api_key

    def can_serve(self, org: str | None, provider: str) -> bool:
        """Whether Lectr can send this org's traffic to `provider` with a key of its own."""
        settings = self.settings(org, provider)
        return bool(settings.api_key) and (provider != "azure" or bool(settings.endpoint))


def parse_credentials(
    text: str | None, env: Mapping[str, str] = os.environ, source: str = "secrets file"
) -> Credentials:
    try:
        doc = yaml.safe_load(text) if text else None
    except RecursionError as e:
        raise CredentialsError(f"{source}: not valid YAML: nested too deeply") from e
    except Exception as e:  # PyYAML also raises ValueError, KeyError... (`2024-02-30`, `!!bool x`)
        raise CredentialsError(f"{source}: not valid YAML: {_where(e)}") from e
    doc = doc or {}
    if not isinstance(doc, dict) or set(doc) - {"providers", "orgs"}:
        raise CredentialsError(f"{source}: expected top-level keys 'providers' and/or 'orgs'")
    defaults = _from_env(env)
    for provider, settings in _parse_providers(doc.get("providers"), f"{source}: providers").items():
        defaults[provider] = settings.merged_over(defaults.get(provider, ProviderSettings()))
    orgs: dict[str, dict[str, ProviderSettings]] = {}
    org_docs = doc.get("orgs") or {}
    if not isinstance(org_docs, dict):
        raise CredentialsError(f"{source}: 'orgs' must map org ids to {{providers: ...}}")
    for org, org_doc in org_docs.items():
        if not isinstance(org_doc, dict) or set(org_doc) - {"providers"}:
            raise CredentialsError(f"{source}: orgs.{org} must be a mapping with one key, 'providers'")
        orgs[str(org)] = _parse_providers(org_doc.get("providers"), f"{source}: orgs.{org}.providers")
    return Credentials(defaults, orgs)


def _from_env(env: Mapping[str, str]) -> dict[str, ProviderSettings]:
    found = {}
    for name in PROVIDERS:
        key = env.get(f"LECTR_{name.upper()}_API_KEY")
        if key:
            found[name] = ProviderSettings(api_key=key)
    if env.get("LECTR_AZURE_BASE_URL") or env.get("LECTR_AZURE_API_VERSION"):
        found["azure"] = ProviderSettings(
            api_key=env.get("LECTR_AZURE_API_KEY"),
            endpoint=(env.get("LECTR_AZURE_BASE_URL") or "").rstrip("/") or None,
            api_version=env.get("LECTR_AZURE_API_VERSION"),
        )
    return found


def _parse_providers(doc: object, where: str) -> dict[str, ProviderSettings]:
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise CredentialsError(f"{where}: must map provider names to settings")
    parsed = {}
    for provider, settings in doc.items():
        if provider not in PROVIDERS:
            raise CredentialsError(f"{where}: unknown provider {provider!r}; use one of {', '.join(PROVIDERS)}")
        if not isinstance(settings, dict) or set(settings) - _SETTINGS_FIELDS:
            raise CredentialsError(f"{where}.{provider}: allowed fields are {', '.join(sorted(_SETTINGS_FIELDS))}")
        deployments = settings.get("deployments") or {}
        if not isinstance(deployments, dict):
            raise CredentialsError(f"{where}.{provider}.deployments: must map model names to deployment names")
        parsed[provider] = ProviderSettings(
            api_key=_str_or_none(settings.get("api_key")),
            endpoint=(_str_or_none(settings.get("endpoint")) or "").rstrip("/") or None,
            api_version=_str_or_none(settings.get("api_version")),
            deployments={str(k): str(v) for k, v in deployments.items()},
        )
    return parsed


def _where(e: Exception) -> str:
    """Where and what, without the text around it: that text may be a key, and this goes to the log."""
    mark = getattr(e, "problem_mark", None)
    if mark is None:
        return f"a value that cannot be read ({type(e).__name__})"
    return f"line {mark.line + 1}, column {mark.column + 1}: {getattr(e, 'problem', None) or 'syntax error'}"


def _str_or_none(value: object) -> str | None:
    return str(value) if value not in (None, "") else None


def load_credentials(path: str, env: Mapping[str, str] = os.environ) -> Credentials:
    """The secrets file at `path`, over `env`'s LECTR_<PROVIDER>_API_KEY and LECTR_AZURE_*."""
    with open(path, encoding="utf-8") as f:
        return parse_credentials(f.read(), env, source=path)


def readable_by_others(path: str) -> bool:
    """Whether users other than its owner may read the file (it holds keys); False for no file."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return bool(mode & (stat.S_IRWXG | stat.S_IRWXO))
