"""Rule checks that warn but never reject: a target model no price database knows.

Pure. A misspelt target model ("gpt-4o-mnii") is accepted by the rules file (new models
appear before any price data does, and Lectr cannot tell the two apart), but every request
the rule routes would then fail over to the original. The proxy logs these at rule load,
and the dashboard's Rules page shows them next to the rule.
"""

from __future__ import annotations

from typing import Iterable

from lectr.common.providers import detect_provider
from lectr.common.rules import Rule
from lectr.prices import pricing

UNKNOWN_MODEL = "unknown model: check the spelling"
WHY = (  # why it is a warning and not an error, for the log and the Rules page alike
    "A new model can appear before its prices do (its requests then have no cost); "
    "a misspelt one fails, and its requests fall back to the original."
)


def target_provider(rule: Rule) -> str | None:
    """Where the rule's target model is asked for, as far as the rule alone says: its target
    provider, else the provider it matches, else the provider the model's name belongs to."""
    return rule.target_provider or rule.provider or (detect_provider(rule.target_model) if rule.target_model else None)


def unknown_target_models(rules: Iterable[Rule]) -> list[Rule]:
    """The rules whose target model no price source knows (for the provider it goes to), in the
    order given. A target without a model (a provider switch only) is fine; a model whose provider
    cannot be told (no provider in the rule, a name no provider's prefix matches) is unknown."""
    unknown = []
    for rule in rules:
        if not rule.target_model:
            continue
        provider = target_provider(rule)
        if provider is None or not pricing.has_price(provider, rule.target_model):
            unknown.append(rule)
    return unknown


def unknown_model_warning(rule: Rule) -> str:
    """The warning for one of `unknown_target_models`' rules, for a log line or the dashboard."""
    provider = target_provider(rule)
    where = f"at {provider}" if provider else "at any provider Lectr recognises by name"
    target = f"rule {rule.name!r} targets model {rule.target_model!r}"
    return f"{target}: {UNKNOWN_MODEL}. No price data knows it {where}. {WHY}"
