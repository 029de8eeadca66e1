"""Cost estimates: the user's price file first, then genai-prices' data (fetched, else bundled).

Pure and offline: the data genai-prices bundles always works. Newer data fetched with
`lectr prices update` (lectr/prices/priceupdate.py) and the user price file (lectr/prices/pricefile.py)
are parsed elsewhere and handed over with `use()`, which swaps them in with one assignment.

Each price says where it came from (`Price.source`): `user`, `updated` (the fetched data)
or `bundled`. Fetched data is tried before the bundled data, model by model, so a fetched
file that lacks a model the bundled data knows still prices it. A model nobody knows has
no price: None, never 0, so unknown spend is never mistaken for free.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from functools import lru_cache
from typing import NamedTuple

from genai_prices import Usage as PriceUsage
from genai_prices.data_snapshot import DataSnapshot, get_snapshot
from genai_prices.types import (
    ModelPrice,
    TieredPrices,
    _providers_from_raw,  # what genai-prices' own UpdatePrices.fetch parses with
)

from lectr.common.usage import Usage
from lectr.prices.pricefile import PriceList

SOURCES = ("user", "updated", "bundled")

# Lectr's provider names where genai-prices spells them differently.
_PROVIDER_IDS = {"gemini": "google", "xai": "x-ai"}


def provider_id(provider: str) -> str:
    """genai-prices' id for one of Lectr's provider names."""
    return _PROVIDER_IDS.get(provider, provider)


# Taken at import, before anything can set genai-prices' process-wide custom snapshot.
_BUNDLED = get_snapshot()


class Price(NamedTuple):
    usd: float
    source: str  # one of SOURCES


@dataclass(frozen=True)
class PriceBook:
    """What prices a call, besides the bundled data."""

    updated: DataSnapshot | None = None  # genai-prices' data as fetched, when there is some
    user: PriceList = PriceList()


_book = PriceBook()


def use(updated: DataSnapshot | None, user: PriceList) -> None:
    """Price from now on with this fetched data (None: bundled only) and these user prices."""
    global _book
    _book = PriceBook(updated, user)
    has_price.cache_clear()
    _flat_rates.cache_clear()


def book() -> PriceBook:
    return _book


def price(provider: str | None, model: str | None, usage: Usage, at: datetime | None = None) -> Price | None:
    """The estimated price of one call and its source, or None when nobody knows a price.

    `at` is when the call was made (naive: UTC; default now): prices change on dates, and
    some (DeepSeek's off-peak hours) by the time of day. Raises only on broken price data:
    an unknown provider or model is None.
    """
    if not provider or not model:
        return None
    at = _utc(at)
    current = _book
    entry = current.user.find(provider, model, at)
    if entry is not None:
        return Price(entry.cost(usage), "user")
    priced = PriceUsage(
        input_tokens=usage.prompt,
        output_tokens=usage.completion,
        cache_read_tokens=usage.cached or None,
        cache_write_tokens=usage.cache_write or None,
    )
    price_provider = provider_id(provider)
    for snapshot, source in ((current.updated, "updated"), (_BUNDLED, "bundled")):
        if snapshot is None:
            continue
        rates = _flat_rates(source, price_provider, model)
        if rates is not None:
            counts = (usage.prompt, usage.completion, usage.cached, usage.cache_write)
            return Price(float(sum(r * (n or 0) for r, n in zip(rates, counts)) / _MILLION), source)
        try:
            result = snapshot.calc(priced, model, price_provider, None, at)
        except LookupError:  # not in this data: try the next
            continue
        return Price(float(result.total_price), source)
    return None


def cost_usd(provider: str | None, model: str | None, usage: Usage, at: datetime | None = None) -> float | None:
    """The estimated price of one call in USD, or None when the provider and model have no known price."""
    found = price(provider, model, usage, at)
    return found.usd if found else None


_MILLION = 1_000_000


@lru_cache(maxsize=4096)
def _flat_rates(source: str, price_provider: str, model: str) -> tuple[Decimal, ...] | None:
    """USD per million input, output, cache-read and cache-write tokens, for a model whose price
    is flat: one price, no tiers, no dates or hours. None: not flat, or not in this data.

    genai-prices 0.2 spends about 70 µs pricing one call (it resolves and validates its units
    each time), which was a third of the writer's time per row. A flat price is linear in the
    counts, so its rates, measured once through the library itself (and checked on a mixed
    usage), price every later call of that model exactly as the library would.
    """
    snapshot = _book.updated if source == "updated" else _BUNDLED  # `use` clears this cache
    try:
        _, info = snapshot.find_provider_model(model, None, price_provider, None)
        prices = info.prices
        if not isinstance(prices, ModelPrice) or any(isinstance(v, TieredPrices) for v in vars(prices).values()):
            return None

        def total(prompt: int, completion: int = 0, cached: int = 0, written: int = 0) -> Decimal:
            counts = PriceUsage(
                input_tokens=prompt,
                output_tokens=completion,
                cache_read_tokens=cached or None,
                cache_write_tokens=written or None,
            )
            return snapshot.calc(counts, model, price_provider, None, None).total_price

        m = _MILLION
        base = total(m)
        rates = (base, total(0, m), total(m, cached=m) - base, total(m, written=m) - base)
        if total(3 * m, 2 * m, m, m) != 3 * rates[0] + 2 * rates[1] + rates[2] + rates[3]:
            return None  # not linear after all: let the library price each call
        return rates
    except (LookupError, ValueError, ArithmeticError):  # not here, or a usage this model's data rejects
        return None


@lru_cache(maxsize=4096)
def has_price(provider: str, model: str) -> bool:
    """Whether some source knows a price for this provider and model (cleared by `use`)."""
    current = _book
    if current.user.knows(provider, model):
        return True
    price_provider = provider_id(provider)
    for snapshot in (current.updated, _BUNDLED):
        if snapshot is None:
            continue
        try:
            snapshot.find_provider_model(model, None, price_provider, None)
        except LookupError:
            continue
        return True
    return False


def parse_data(raw: bytes) -> DataSnapshot:
    """genai-prices' data file (its data.json) as a snapshot. Raises ValueError when it is not one."""
    try:
        payload = json.loads(raw)
    except (ValueError, RecursionError) as e:
        raise ValueError(f"not JSON: {e}") from e
    if not isinstance(payload, list) or not payload:
        raise ValueError("expected genai-prices' data: a JSON list of providers")
    try:
        providers = _providers_from_raw(payload)
    except Exception as e:  # pydantic's ValidationError, and whatever a malformed file raises inside it
        raise ValueError(f"not genai-prices' data: {str(e)[:500]}") from e
    if not any(p.models for p in providers):
        raise ValueError("genai-prices' data without a single model")
    return DataSnapshot(providers, from_auto_update=True)


def load_data_file(path: str) -> DataSnapshot:
    with open(path, "rb") as f:
        raw = f.read()
    try:
        return parse_data(raw)
    except ValueError as e:
        raise ValueError(f"{path}: {e}; run 'lectr prices update' to fetch it again") from e


def _utc(at: datetime | None) -> datetime:
    if at is None:
        return datetime.now(timezone.utc)
    return at.replace(tzinfo=timezone.utc) if at.tzinfo is None else at
