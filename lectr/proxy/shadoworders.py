"""Where a shadow request goes: the candidate's URL and headers, with Lectr's own key.

Pure. The Shadow addon (lectr.proxy.addons.shadow) hands in the facts it holds in memory
(the experiment, the request's API, the credentials and base URLs Router uses) and gets a
`ShadowOrder` for the writer process, or one that says why it cannot be sent. Never the
client's key: a shadow request is Lectr's spend, on the key Lectr was given for it.
"""

from __future__ import annotations

from typing import Mapping

from lectr.common.events import ShadowOrder
from lectr.common.experiments import Experiment
from lectr.proxy.credentials import DEFAULT_AZURE_API_VERSION, Credentials
from lectr.proxy.endpoints import CHAT, MESSAGES, RESPONSES, Endpoint, upstream_url
from lectr.proxy.headers import Fields, invalid_field, with_provider_auth
from lectr.proxy.routing import RESPONSES_PROVIDERS

# The APIs whose answers can be compared (lectr.shadow.answers reads these three).
SHADOWABLE = (CHAT, MESSAGES, RESPONSES)
# The client's headers a candidate needs to read the request as the client meant it.
_KEPT = (b"anthropic-version", b"anthropic-beta")


def shadow_order(
    experiment: Experiment,
    *,
    org: str | None,
    endpoint: str,
    provider: str,
    credentials: Credentials,
    base_urls: Mapping[str, str],
    client_fields: Fields,
    secrets_file: str,
) -> ShadowOrder:
    """The order for one sampled request to `endpoint` that went to `provider`."""
    candidate = experiment.candidate_provider or provider
    blocked = _why_not(endpoint, candidate, org, credentials, secrets_file)
    url = ""
    if blocked is None:
        try:
            url = _url(endpoint, candidate, experiment.candidate_model, org, credentials, base_urls)
        except (KeyError, ValueError) as e:
            blocked = f"cannot address {candidate}: {e}"
    headers: tuple[tuple[str, str], ...] = ()
    if blocked is None:
        fields = ((b"content-type", b"application/json"),) + tuple(
            (n, v) for n, v in client_fields if n.lower() in _KEPT and candidate == "anthropic"
        )
        with_auth = with_provider_auth(fields, candidate, credentials.api_key(org, candidate))
        if invalid_field(with_auth) is None:
            headers = tuple((n.decode("latin-1"), v.decode("utf-8", "surrogateescape")) for n, v in with_auth)
        else:  # a key pasted with its line break: HTTP cannot carry it (and its error would quote it)
            blocked = f"Lectr's {candidate} key holds a line break or NUL: fix it in {secrets_file} or the environment"
    return ShadowOrder(
        experiment_id=experiment.id,
        provider=candidate,
        model=experiment.candidate_model,
        url=url,
        headers=headers,
        max_requests_per_day=experiment.max_requests_per_day,
        max_usd_per_day=experiment.max_usd_per_day,
        blocked=blocked,
    )


def _why_not(endpoint: str, candidate: str, org: str | None, credentials: Credentials, secrets_file: str) -> str | None:
    if endpoint == MESSAGES and candidate != "anthropic":
        return f"native Anthropic /v1/messages traffic can only be shadowed within Anthropic, not on {candidate}"
    if endpoint == RESPONSES and candidate not in RESPONSES_PROVIDERS:
        return f"Responses API traffic can only be shadowed on {' or '.join(RESPONSES_PROVIDERS)}, not on {candidate}"
    if not credentials.can_serve(org, candidate):
        what = "key and endpoint" if candidate == "azure" else "key"
        endpoint_too = f" and providers.{candidate}.endpoint" if candidate == "azure" else ""
        return (
            f"Lectr has no {candidate} {what} of its own for org {org!r}: add providers.{candidate}.api_key"
            f"{endpoint_too} to {secrets_file} (read within a second) or set LECTR_{candidate.upper()}_API_KEY "
            "and restart Lectr"
        )
    return None


def _url(
    endpoint: str, provider: str, model: str, org: str | None, credentials: Credentials, base_urls: Mapping[str, str]
) -> str:
    native = "anthropic" if endpoint == MESSAGES else None
    if provider != "azure":
        return upstream_url(base_urls[provider], provider, Endpoint(endpoint, native=native))
    settings = credentials.settings(org, "azure")
    base = settings.endpoint or base_urls.get("azure") or ""
    if not base:
        raise ValueError("no Azure endpoint configured: set providers.azure.endpoint in the secrets file")
    version = settings.api_version or DEFAULT_AZURE_API_VERSION
    return upstream_url(base, "azure", Endpoint(endpoint), version, settings.deployments.get(model, model))
