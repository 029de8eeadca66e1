"""Model families from the price data: which smaller models sit beside a model at its provider.

A recommendation moves a feature to a smaller model of the same family at the same provider
(no new key, the same API). The candidates are the models genai-prices knows, so a model
released tomorrow can be proposed as soon as the price data lists it. Each name is read by
one small pattern per provider (`RULES`) into its line (gpt, claude, gemini...), generation
(the major version: claude-opus-5 and claude-haiku-5-5 are one Claude generation), release
(5.4 within generation 5) and tier word. Which tier word is the larger model is not in the
name: lectr/prices/tiers.yaml says, and users extend it (LECTR_TIERS).

Never placed in a family (so never the subject or the object of a recommendation): a model
whose name has a word the tiers file does not know (codex, cyber, multi-agent: another
product) or marks another modality (image, realtime, embedding...). Never proposed, though
placed: deprecated or retired models, previews (a recommendation should still work next
month) and ids the price data lists but the provider's API does not accept.

Pure, but for `load_tiers`, which reads the tiers files, and `catalog`, which takes the price
data pricing uses at the moment.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml
from genai_prices import data_snapshot
from genai_prices.types import ModelInfo

from lectr.common.errors import LectrError
from lectr.prices import pricing

# The providers whose models are placed in families: Lectr's name -> the price data's.
PRICE_PROVIDERS = {
    p: pricing.provider_id(p) for p in ("openai", "anthropic", "gemini", "xai", "mistral", "deepseek", "groq")
}
SAME_MODELS_AS = {"azure": "openai"}  # Azure serves OpenAI's models under OpenAI's names

# Per provider (price data id), patterns for a name without its release qualifiers, with
# named groups: line, major and minor (the version), tier (a word of tiers.yaml) or size
# (billions of parameters), mode (a reasoning variant). A name no pattern matches has no family.
_OPENWEIGHT = r"(?:[a-z-]+/)?(?P<line>[a-z]+(?:-[a-z]+)*?)-?(?P<major>\d+)?(?:\.(?P<minor>\d+))?-(?P<size>\d+)b(?:-.+)?"
RULES: dict[str, list[str]] = {
    "openai": [
        r"(?P<line>gpt)-(?P<major>\d+)(?:\.(?P<minor>\d+))?(?:-(?P<tier>[a-z-]+))?",
        r"(?P<line>gpt-(?P<major>4)o)(?:-(?P<tier>[a-z-]+))?",  # gpt-4o: a line of its own beside gpt-4.1
        r"(?P<line>o)(?P<minor>\d+)(?:-(?P<tier>[a-z-]+))?",  # o1, o3, o4-mini: releases of one family
    ],
    "anthropic": [
        r"(?P<line>claude)-(?P<tier>[a-z]+)-(?P<major>\d+)(?:-(?P<minor>\d{1,2}))?",  # Claude 4 on
        r"(?P<line>claude)-(?P<major>\d+)(?:-(?P<minor>\d))?-(?P<tier>[a-z]+)",  # claude-3-5-haiku
    ],
    "google": [r"(?P<line>gemini)-(?P<major>\d+)(?:\.(?P<minor>\d+))?-(?P<tier>[a-z-]+)"],
    "x-ai": [
        r"(?P<line>grok)-(?P<major>\d+)(?:[.-](?P<minor>\d{1,2}))?(?:-(?P<tier>[a-z-]+?))?(?P<mode>-(?:non-)?reasoning)?"
    ],
    # Mistral versions each size on its own schedule (Large 4 beside Medium 3.5 and Small 2603),
    # so its sizes are one family, and only the -latest alias is proposed (see LATEST_ONLY).
    "mistral": [r"(?P<line>mistral)-(?P<tier>[a-z]+)(?:-.+)?"],
    "deepseek": [r"(?P<line>deepseek)-v(?P<major>\d+)(?:\.(?P<minor>\d+))?(?:-(?P<tier>[a-z]+))?"],
    "groq": [_OPENWEIGHT],  # qwen/qwen3-32b, llama-3.1-8b-instant, openai/gpt-oss-20b: by size
}
_COMPILED = {provider: [re.compile(p) for p in patterns] for provider, patterns in RULES.items()}
LATEST_ONLY = {"mistral"}  # Mistral's -latest alias is its own pointer to a size's current release

# A release qualifier at the end of a name: dates (-20250514, -2024-08-06, -0709, -05-20),
# -latest, and the previews (-preview, -exp) that are placed but not proposed.
_QUALIFIER = re.compile(r"-(latest|preview|exp|\d{8}|\d{4}(?:-\d{2}-\d{2})?|\d{2}-\d{2})$")
# Most retirements are flagged `deprecated`; a few retired models are kept for old usage
# records and say so only in their description ("Retired on 2025-06-16", "(Shut down)").
_RETIRED = re.compile(r"(?:^|\.)\s*Retired\b|\(Shut down\)")


class TiersError(LectrError, ValueError):
    """A tiers file cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class Tiers:
    ranks: dict[str, dict[str, int]]  # Lectr provider -> tier word -> rank (0: the most capable)
    not_chat: frozenset[str]


@dataclass(frozen=True)
class Model:
    name: str  # the price data's id: the name a recommendation proposes
    family: tuple[str, str]  # (line, generation); generation "" where a line has none
    rank: int  # the tier: 0 is the family's most capable, larger is smaller
    release: tuple[int, int]  # (major, minor), to pick the sibling nearest in time
    proposable: bool
    reasoning: bool = False  # a reasoning variant (grok-4-1-fast-reasoning)


def parse_tiers(text: str, source: str) -> Tiers:
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise TiersError(f"{source}: not valid YAML: {e}") from e
    if not isinstance(doc, dict) or set(doc) - {"tiers", "not_chat"}:
        raise TiersError(f"{source}: expected a mapping with 'tiers:' and/or 'not_chat:' (see lectr/prices/tiers.yaml)")
    if not isinstance(doc.get("tiers") or {}, dict):
        raise TiersError(f"{source}: tiers: expected a mapping of provider to tier words (see lectr/prices/tiers.yaml)")
    ranks: dict[str, dict[str, int]] = {}
    for provider, levels in (doc.get("tiers") or {}).items():
        if provider not in PRICE_PROVIDERS or provider == "groq":
            known = ", ".join(p for p in PRICE_PROVIDERS if p != "groq")
            raise TiersError(f"{source}: tiers for {provider!r}: expected one of {known} (Groq ranks by size)")
        if not isinstance(levels, list):
            raise TiersError(f"{source}: tiers for {provider}: expected a list of tier words, most capable first")
        ranks[provider] = {}
        for rank, words in enumerate(levels):
            for word in words if isinstance(words, list) else [words]:
                if not isinstance(word, str) or word in ranks[provider]:
                    raise TiersError(f"{source}: tiers for {provider}: {word!r} must be a word listed once")
                ranks[provider][word] = rank
    words = doc.get("not_chat") or []
    if not isinstance(words, list) or not all(isinstance(w, str) and w for w in words):
        raise TiersError(f"{source}: not_chat: expected a list of words")
    return Tiers(ranks, frozenset(words))


def load_tiers(path: str | Path | None = None) -> Tiers:
    """Lectr's tiers, extended by the file at `path` (default: $LECTR_TIERS) if there is one."""
    tiers = parse_tiers(
        resources.files("lectr.prices").joinpath("tiers.yaml").read_text(encoding="utf-8"), "lectr/prices/tiers.yaml"
    )
    path = path or os.environ.get("LECTR_TIERS")
    if not path:
        return tiers
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise TiersError(f"{path}: cannot read the tiers file ({e.strerror}); fix or unset LECTR_TIERS") from e
    user = parse_tiers(text, str(path))
    return Tiers({**tiers.ranks, **user.ranks}, tiers.not_chat | user.not_chat)


def read_name(price_provider: str, name: str) -> tuple[dict[str, str | None], set[str]] | None:
    """The groups of the provider's pattern for `name`, and its qualifiers (latest, preview...)."""
    qualifiers = set()
    while found := _QUALIFIER.search(name):
        qualifiers.add(found[1])
        name = name[: found.start()]
    for pattern in _COMPILED.get(price_provider, ()):
        if m := pattern.fullmatch(name):
            return m.groupdict(), qualifiers
    return None


def place(provider: str, info: ModelInfo, tiers: Tiers) -> Model | None:
    """The model's family, tier and release, or None when its name does not say (or it is not chat)."""
    price_provider = PRICE_PROVIDERS[provider]
    if tiers.not_chat & set(re.split(r"[-/]", info.id)):
        return None
    read = read_name(price_provider, info.id)
    if read is None:
        return None
    groups, qualifiers = read
    if groups.get("size"):
        rank = -int(groups["size"])  # open weights: the larger the more capable
    elif (rank := tiers.ranks.get(provider, {}).get(groups.get("tier") or "")) is None:
        return None  # a tier word nobody ranked: another product (codex, cyber) rather than a size
    retired = info.deprecated or _RETIRED.search(f"{info.description or ''} {info.price_comments or ''}")
    proposable = (
        not retired
        and not qualifiers & {"preview", "exp"}
        and info.is_match(info.id)  # an id the API accepts (not a price-data label like ft:gpt-4o)
        and (provider not in LATEST_ONLY or "latest" in qualifiers)
    )
    return Model(
        name=info.id,
        family=(groups["line"], groups.get("major") or ""),
        rank=rank,
        release=(int(groups.get("major") or 0), int(groups.get("minor") or 0)),
        proposable=proposable,
        reasoning=groups.get("mode") == "-reasoning",
    )


class Catalog:
    """Every placed model of every provider Lectr knows, from the price data pricing uses."""

    def __init__(self, snapshots: list[data_snapshot.DataSnapshot], tiers: Tiers) -> None:
        """`snapshots` most current first (fetched data, then bundled): the first to list an id wins."""
        self._snapshots = snapshots
        self._models: dict[str, dict[str, Model]] = {}
        for provider, price_provider in PRICE_PROVIDERS.items():
            infos: dict[str, ModelInfo] = {}
            for snapshot in snapshots:
                for p in snapshot.providers:
                    if p.id == price_provider:
                        infos.update({m.id: m for m in p.models if m.id not in infos})
            placed = (place(provider, info, tiers) for info in infos.values())
            self._models[provider] = {m.name: m for m in placed if m is not None}

    def find(self, provider: str, model: str) -> Model | None:
        """The model as requested (dated names included: gpt-4o-2024-08-06 is gpt-4o), if placed."""
        provider = SAME_MODELS_AS.get(provider, provider)
        if provider not in PRICE_PROVIDERS:
            return None
        for snapshot in self._snapshots:  # in the order pricing looks a model up
            try:
                _, info = snapshot.find_provider_model(model, None, PRICE_PROVIDERS[provider], None)
            except LookupError:
                continue
            return self._models[provider].get(info.id)
        return None

    def smaller(self, provider: str, here: Model) -> list[Model]:
        """The proposable models of the same family in smaller tiers."""
        provider = SAME_MODELS_AS.get(provider, provider)
        return [
            m
            for m in self._models.get(provider, {}).values()
            if m.family == here.family and m.rank > here.rank and m.proposable
        ]

    def family(self, provider: str, here: Model) -> list[Model]:
        """Every placed model of the family, proposable or not (for explanations and tests)."""
        provider = SAME_MODELS_AS.get(provider, provider)
        return [m for m in self._models.get(provider, {}).values() if m.family == here.family]


def catalog(tiers_path: str | Path | None = None) -> Catalog:
    """The catalog of the price data pricing uses now (`lectr prices update`'s, then the bundled)."""
    fetched = pricing.book().updated
    snapshots = [s for s in (fetched, data_snapshot.get_snapshot()) if s is not None]
    return Catalog(snapshots, load_tiers(tiers_path))
