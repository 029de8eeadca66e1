"""The routing decision: given what a request is and the rules in force, where does it go?

Pure. The addon supplies the facts it read from the request and a `can_serve(provider)`
answer from the proxy's credentials; nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from lectr.common import faults
from lectr.common.rules import Rule, RuleSet
from lectr.proxy.endpoints import RESPONSES, Endpoint

# The providers that serve OpenAI's Responses API: a rule may switch a /responses request to these.
RESPONSES_PROVIDERS = ("openai", "azure")


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything routing decided for one request, computed before anything is changed."""

    url: str  # the upstream URL
    provider: str
    content: bytes | None = None  # None: body unchanged
    key: str | None = None  # the provider key to send, in the provider's own auth header
    normalise_auth: bool = True  # False: auth headers go exactly as the client sent them


@dataclass(frozen=True, slots=True)
class Original:
    """A request as the client sent it, and how it would have gone without the rule that
    changed it: what Lectr falls back to when the rule's target fails (lectr.proxy.addons.fallback)."""

    fields: tuple[tuple[bytes, bytes], ...]  # the client's headers
    content: bytes | None  # the client's body, as sent (Content-Encoding and all)
    address: tuple[str, str, int]  # scheme, host, port it was addressed to (an intercepted Azure host is its own)
    provider: str
    model: str | None
    rule_id: str
    # How the request goes unchanged, asked only when a fallback happens (the client's headers and
    # address back in place): a routed request that needs none does not pay for the plan.
    replan: Callable[[], Plan]


@dataclass(frozen=True, slots=True)
class Route:
    provider: str  # where the request goes
    model: str | None  # the model it asks for there
    rule: Rule | None = None  # the rule that was applied
    skip_reason: str | None = None  # why a matching rule was not applied
    skipped: Rule | None = None  # the matching rule that was not applied

    def switches_from(self, provider: str) -> bool:
        return self.provider != provider

    def changes(self, provider: str, model: str | None) -> bool:
        """A rule applied, and it sends the request elsewhere or asks another model: a rule whose
        target is the request as sent (first match, to keep some traffic where it is) changes nothing."""
        return self.rule is not None and (self.provider != provider or self.model != model)


def choose_route(
    rules: RuleSet,
    *,
    org: str | None,
    feature: str | None,
    task: str | None,
    provider: str,
    model: str | None,
    endpoint: Endpoint,
    can_serve: Callable[[str], bool],
    held: Callable[[str], str | None] = lambda rule_id: None,
) -> Route:
    """Where the request goes. `held(rule_id)` says why a rule is not applied for now (it is
    suspended, lectr.proxy.rulehealth), or None."""
    unchanged = Route(provider, model)
    if model is None or not endpoint.routable:
        return unchanged
    faults.check("rules.evaluate")
    rule = rules.first_match(org, feature, task, provider, model)
    if rule is None:
        return unchanged
    reason = held(rule.id)
    if reason is not None:
        return Route(provider, model, skip_reason=reason, skipped=rule)
    target_provider = rule.target_provider or provider
    target_model = rule.target_model or model
    if target_provider != provider:
        if endpoint.native == "anthropic":
            reason = (
                f"rule {rule.id!r} targets {target_provider}, but native Anthropic "
                "/v1/messages traffic can only be routed within Anthropic"
            )
        elif endpoint.suffix == RESPONSES and target_provider not in RESPONSES_PROVIDERS:
            reason = (
                f"rule {rule.id!r} targets {target_provider}, but Responses API traffic can only be routed "
                f"to {' or '.join(RESPONSES_PROVIDERS)}"
            )
        elif not can_serve(target_provider):
            reason = (
                f"rule {rule.id!r} targets {target_provider}, but Lectr has no "
                f"{target_provider} key configured for org {org!r}"
            )
        if reason is not None:
            return Route(provider, model, skip_reason=reason, skipped=rule)
    return Route(target_provider, target_model, rule)
