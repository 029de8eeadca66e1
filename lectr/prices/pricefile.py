"""The user price file (`prices.yaml`): prices that override the price database.

For what the database cannot know: fine-tunes, Azure deployments (named by the org),
self-hosted models, negotiated rates. Pure: no mitmproxy import, no I/O beyond
`load_price_file`. A parsed `PriceList` is immutable, so the writer builds a new one
aside and swaps it in with one assignment (see lectr/common/watch.py for the reload).

Which entry prices a request: among the entries whose provider and model match and whose
`from` date has come (UTC), an exact model name wins over a pattern; then the latest
`from` (none counts as earliest); then the entry that comes first in the file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from fnmatch import fnmatchcase
from pathlib import Path

from lectr.common.errors import LectrError
from lectr.common.providers import PROVIDERS
from lectr.common.usage import Usage
from lectr.common.yamldoc import list_under

PRICES_FILE = "prices.yaml"  # the user's price file where none is named (lectr_prices_file, --prices-file)

_FIELDS = {"provider", "model", "input", "cached_input", "output", "from"}
# USD per million tokens. The dearest model sells at a few hundred: a larger number is a typo or another unit.
MAX_PRICE = 100_000
MODEL_NAME_MAX = 256  # as metering: no model has a longer name
_GLOB = set("*?[")


class PriceFileError(LectrError, ValueError):
    """The price file cannot be used; the message names the entry and the problem."""


@dataclass(frozen=True, slots=True)
class UserPrice:
    provider: str  # lower-cased, one of lectr.common.providers.PROVIDERS
    model: str  # an exact name, or a glob pattern (*, ?, [...]), matched case-sensitively
    input: float  # USD per million input tokens that were not read from the cache
    output: float  # USD per million output tokens
    cached_input: float | None = None  # USD per million cached input tokens; None: as `input`
    start: date | None = None  # `from`: the first UTC day it applies; None: always
    index: int = 0  # its place in the file, from 1: the tie-break, and how errors name it

    @property
    def is_pattern(self) -> bool:
        return bool(_GLOB & set(self.model))

    def cost(self, usage: Usage) -> float:
        """USD for one call. `usage.prompt` includes cached input (lectr.common.usage); cache writes are input."""
        cached = min(max(usage.cached or 0, 0), usage.prompt)
        cached_rate = self.input if self.cached_input is None else self.cached_input
        return ((usage.prompt - cached) * self.input + cached * cached_rate + usage.completion * self.output) / 1e6


@dataclass(frozen=True)
class PriceList:
    entries: tuple[UserPrice, ...] = ()
    _exact: dict[tuple[str, str], tuple[UserPrice, ...]] = field(default_factory=dict, repr=False, compare=False)
    _patterns: tuple[UserPrice, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        exact: dict[tuple[str, str], tuple[UserPrice, ...]] = {}
        for entry in self.entries:
            if not entry.is_pattern:
                key = (entry.provider, entry.model)
                exact[key] = (*exact.get(key, ()), entry)
        object.__setattr__(self, "_exact", exact)
        object.__setattr__(self, "_patterns", tuple(e for e in self.entries if e.is_pattern))

    def find(self, provider: str, model: str, at: datetime) -> UserPrice | None:
        """The entry that prices `model` at `provider` at time `at` (naive: UTC), or None."""
        if not self.entries:
            return None
        day = (at.astimezone(timezone.utc) if at.tzinfo else at).date()
        provider = provider.lower()
        for candidates in (
            self._exact.get((provider, model), ()),
            [e for e in self._patterns if e.provider == provider and fnmatchcase(model, e.model)],
        ):
            started = [e for e in candidates if e.start is None or e.start <= day]
            if started:
                return max(started, key=lambda e: (e.start or date.min, -e.index))
        return None

    def knows(self, provider: str, model: str) -> bool:
        """Some entry names this provider and model, whatever its date."""
        provider = provider.lower()
        return bool(self._exact.get((provider, model))) or any(
            e.provider == provider and fnmatchcase(model, e.model) for e in self._patterns
        )


def load_price_file(path: str | Path) -> PriceList:
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise PriceFileError(f"{path}: not UTF-8 text (byte {e.start}): save it as UTF-8") from e
    return parse_prices(text, str(path))


def parse_prices(text: str, source: str = "price file") -> PriceList:
    """Parse and validate a price file. Raises PriceFileError naming the entry and the problem."""
    items = list_under("prices", text, source, PriceFileError)
    if items is None:
        return PriceList()
    entries: list[UserPrice] = []
    seen: dict[tuple, int] = {}
    for index, item in enumerate(items, start=1):
        entry = _parse_entry(item, f"{source}: price #{index}", index)
        key = (entry.provider, entry.model, entry.start)
        if key in seen:
            raise PriceFileError(
                f"{source}: price #{index} ({entry.provider} {entry.model}) has the same provider, model and "
                f"'from' as price #{seen[key]}: remove one, or give one a later 'from'"
            )
        seen[key] = index
        entries.append(entry)
    return PriceList(tuple(entries))


def _parse_entry(item: object, where: str, index: int) -> UserPrice:
    if not isinstance(item, dict):
        raise PriceFileError(f"{where}: each price must be a mapping with provider, model, input and output")
    if isinstance(item.get("provider"), str) and isinstance(item.get("model"), str):
        where = f"{where} ({item['provider'].strip()} {item['model'].strip()})"  # which entry, in the user's words
    unknown = sorted(set(map(str, item)) - _FIELDS)
    if unknown:
        raise PriceFileError(
            f"{where}: unknown field {', '.join(map(repr, unknown))}; allowed: {', '.join(sorted(_FIELDS))}"
        )
    provider, model = item.get("provider"), item.get("model")
    if not isinstance(provider, str) or not provider.strip():
        raise PriceFileError(f"{where}: 'provider' is required, one of {', '.join(PROVIDERS)}")
    if provider.strip().lower() not in PROVIDERS:
        raise PriceFileError(f"{where}: provider {provider!r} is unknown; use one of {', '.join(PROVIDERS)}")
    if not isinstance(model, str) or not model.strip() or len(model.strip()) > MODEL_NAME_MAX:
        raise PriceFileError(
            f"{where}: 'model' is required: the model name as the provider reports it, or a pattern with * "
            f"(at most {MODEL_NAME_MAX} characters)"
        )
    provider, model = provider.strip().lower(), model.strip()
    return UserPrice(
        provider=provider,
        model=model,
        input=_price(item, "input", where, required=True),
        output=_price(item, "output", where, required=True),
        cached_input=_price(item, "cached_input", where, required=False),
        start=_date(item.get("from"), where),
        index=index,
    )


def _price(item: dict, key: str, where: str, required: bool) -> float | None:
    value = item.get(key)
    if value is None and not required:
        return None
    if value is None:
        raise PriceFileError(f"{where}: {key!r} is required: a number, USD per million tokens, e.g. 2.5")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise PriceFileError(f"{where}: {key!r} must be a number: USD per million tokens, e.g. 2.5 (got {value!r})")
    if not 0 <= value <= MAX_PRICE:
        raise PriceFileError(
            f"{where}: {key!r} is {value}; it is USD per million tokens, from 0 to {MAX_PRICE} "
            "(the dearest models cost a few hundred)"
        )
    return float(value)


def _date(value: object, where: str) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):  # YAML reads `2027-01-01 00:00` as a datetime
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise PriceFileError(f"{where}: 'from' must be a date, YYYY-MM-DD (got {value!r})")
