"""The routing decision: given what a request is and the rules in force, where does it go?

Pure. The addon supplies the facts it read from the request and a `can_serve(provider)`
answer from the proxy's credentials; nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from lectr import faults
from lectr.endpoints import Endpoint
from lectr.rules import Rule, RuleSet


@dataclass(frozen=True, slots=True)
class Route:
    provider: str  # where the request goes
    model: str | None  # the model it asks for there
    rule: Rule | None = None  # the rule that was applied
    skip_reason: str | None = None  # why a matching rule was not applied

    def switches_from(self, provider: str) -> bool:
        return self.provider != provider


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
) -> Route:
    unchanged = Route(provider, model)
    if model is None or not endpoint.routable:
        return unchanged
    faults.check("rules.evaluate")
    rule = rules.first_match(org, feature, task, provider, model)
    if rule is None:
        return unchanged
    target_provider = rule.target_provider or provider
    target_model = rule.target_model or model
    if target_provider != provider:
        if endpoint.native == "anthropic":
            return Route(
                provider,
                model,
                skip_reason=f"rule {rule.id!r} targets {target_provider}, but native Anthropic "
                "/v1/messages traffic can only be routed within Anthropic",
            )
        if not can_serve(target_provider):
            return Route(
                provider,
                model,
                skip_reason=f"rule {rule.id!r} targets {target_provider}, but Lectr has no "
                f"{target_provider} key configured for org {org!r}",
            )
    return Route(target_provider, target_model, rule)
