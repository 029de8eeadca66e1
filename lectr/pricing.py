"""Cost estimates from `genai-prices`, a maintained price database bundled with its data.

Pure and offline. A model the database does not know has no price: `cost_usd` returns
None, never 0, so unknown spend is never mistaken for free.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache

from genai_prices import Usage as PriceUsage
from genai_prices import calc_price

from lectr.usage import Usage

# Lectr's provider names where genai-prices spells them differently.
_PROVIDER_IDS = {"gemini": "google", "xai": "x-ai"}


def cost_usd(provider: str | None, model: str | None, usage: Usage, at: datetime | None = None) -> float | None:
    """The estimated price of one call, or None when the provider and model have no known price."""
    if not provider or not model or not has_price(provider, model):
        return None
    priced = PriceUsage(
        input_tokens=usage.prompt,
        output_tokens=usage.completion,
        cache_read_tokens=usage.cached or None,
        cache_write_tokens=usage.cache_write or None,
    )
    try:
        result = calc_price(
            priced, model_ref=model, provider_id=_PROVIDER_IDS.get(provider, provider), genai_request_timestamp=at
        )
    except (LookupError, ValueError):
        return None
    return float(result.total_price)


@lru_cache(maxsize=4096)
def has_price(provider: str, model: str) -> bool:
    try:
        one = PriceUsage(input_tokens=1, output_tokens=1)
        calc_price(one, model_ref=model, provider_id=_PROVIDER_IDS.get(provider, provider))
    except (LookupError, ValueError):
        return False
    return True
