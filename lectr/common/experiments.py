"""Shadow experiments: the YAML schema, its validation, and which experiment a request falls in.

Pure, like lectr/common/rules.py, whose conditions an experiment shares. An experiment says
which traffic it samples (org, feature, task, provider, model: matched as rules match, against
the route the request took), the candidate to send a sample to (a model, and a provider when it
differs), how much (`sample_rate`), and how far (`max_requests_per_day`, `max_usd_per_day`).
The proxy (lectr.proxy.addons.shadow) picks the samples; the writer process sends them and
compares the answers (lectr.shadow.runner). The file sits beside the rules file and is reloaded
the same way:

    experiments:
      - name: acme triage on gpt-4o-mini
        org: acme
        match: {feature: triage, provider: openai, model: gpt-4o}
        candidate: {model: gpt-4o-mini}
        sample_rate: 0.1            # share of matching requests sent again (0 < rate <= 1)
        max_requests_per_day: 500   # shadow requests per UTC day
        max_usd_per_day: 2.0        # shadow spend per UTC day
        enabled: true               # false: stopped (its evidence stays)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from lectr.common.providers import PROVIDERS
from lectr.common.rules import IN_DB, Rule, RuleError, RuleSet, parse_rule, read_rules_text
from lectr.common.yamldoc import list_under

EXPERIMENTS_FILE = "experiments.yaml"  # beside the rules file, where none is named
SAMPLE_RATE, MAX_REQUESTS_PER_DAY, MAX_USD_PER_DAY = 0.1, 500, 2.0  # what a new experiment starts with

# What became of a sampled request (shadow_calls.outcome), and those that were sent to the candidate and
# so count against the caps: compared, candidate_error (it failed), lectr_error (Lectr failed reading it).
OUTCOMES = ("compared", "candidate_error", "lectr_error", "capped", "dropped", "blocked", "unsupported")
SENT = OUTCOMES[:3]

_FIELDS = {
    "id",
    "name",
    "enabled",
    "org",
    "match",
    "candidate",
    "sample_rate",
    "max_requests_per_day",
    "max_usd_per_day",
}


class ShadowSettings(NamedTuple):
    """How the writer process sends shadow requests: the proxy's lectr_shadow_* options."""

    # Samples waiting to be sent (each holds its request and answer in memory); when full, new ones
    # are dropped and counted. The writer offers a batch's samples at once: room for a few batches' worth.
    queue_size: int = 200
    concurrency: int = 4  # shadow requests in flight at once
    timeout_s: float = 120.0  # a candidate's whole answer (non-streaming)


class ExperimentError(RuleError):
    """The experiments file cannot be used; the message names the experiment and the problem."""


@dataclass(frozen=True, slots=True)
class Experiment:
    id: str
    name: str
    enabled: bool
    org: str | None
    feature: str | None
    task: str | None
    provider: str | None
    model: str | None
    candidate_provider: str | None  # None: the provider the request went to
    candidate_model: str
    sample_rate: float
    max_requests_per_day: int
    max_usd_per_day: float


@dataclass(frozen=True, slots=True)
class Experiments:
    experiments: tuple[Experiment, ...] = ()  # in file order
    # Built once: the conditions as rules (priority: the place in the file), so matching is the
    # rules' own; and the running ones, asked of every answered request.
    _conditions: RuleSet = field(default=RuleSet(), repr=False)
    _by_id: dict = field(default_factory=dict, repr=False)
    running: tuple[Experiment, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        rules = tuple(_as_rule(e, i) for i, e in enumerate(self.experiments, start=1))
        object.__setattr__(self, "_conditions", RuleSet(rules))
        object.__setattr__(self, "_by_id", {e.id: e for e in self.experiments})
        object.__setattr__(self, "running", tuple(e for e in self.experiments if e.enabled))

    def first_match(
        self, org: str | None, feature: str | None, task: str | None, provider: str, model: str
    ) -> Experiment | None:
        """The first enabled experiment (in file order) whose conditions all hold."""
        rule = self._conditions.first_match(org, feature, task, provider, model)
        return None if rule is None else self._by_id[rule.id]


def _as_rule(e: Experiment, priority: int) -> Rule:
    return Rule(
        id=e.id, name=e.name, priority=priority, enabled=e.enabled, org=e.org, feature=e.feature, task=e.task,
        provider=e.provider, model=e.model, target_provider=e.candidate_provider, target_model=e.candidate_model,
    )  # fmt: skip


def parse_experiments(text: str, source: str = "experiments file") -> Experiments:
    """Parse and validate an experiments document. Raises ExperimentError naming the experiment."""
    items = list_under("experiments", text, source, ExperimentError)
    experiments: list[Experiment] = []
    seen: dict[str, str] = {}
    for index, item in enumerate(items or [], start=1):
        experiment = _parse(item, source, index)
        if experiment.id in seen:
            raise ExperimentError(
                f"{source}: experiment {experiment.name!r}: id {experiment.id!r} is already used by "
                f"{seen[experiment.id]!r}; give one of them an 'id' of its own"
            )
        seen[experiment.id] = experiment.name
        experiments.append(experiment)
    return Experiments(tuple(experiments))


def load_experiments_file(path: str | Path) -> Experiments:
    return parse_experiments(read_rules_text(path), source=str(path))


def experiments_path(rules_path: str, named: str = "") -> str:
    """The experiments file: the one named, else experiments.yaml beside the rules file; with the rules
    in the database (IN_DB), the experiments are there too."""
    if named or rules_path == IN_DB:
        return named or IN_DB
    return os.path.join(os.path.dirname(rules_path), EXPERIMENTS_FILE)


def _parse(item: object, source: str, index: int) -> Experiment:
    if not isinstance(item, dict):
        raise ExperimentError(
            f"{source}: experiment #{index}: each experiment must be a mapping with name, match, candidate"
        )
    name = item.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ExperimentError(f"{source}: experiment #{index}: 'name' is required (a non-empty string)")
    where = f"{source}: experiment {name.strip()!r}"
    unknown = sorted(set(map(str, item)) - _FIELDS)
    if unknown:
        raise ExperimentError(
            f"{where}: unknown field {', '.join(map(repr, unknown))}; allowed: {', '.join(sorted(_FIELDS))}"
        )
    candidate = item.get("candidate")
    if not isinstance(candidate, dict) or not isinstance(candidate.get("model"), str) or not candidate["model"].strip():
        raise ExperimentError(
            f"{where}: 'candidate' is required, with the model to try (and its provider when it differs)"
        )
    if set(map(str, candidate)) - {"model", "provider"}:
        raise ExperimentError(f"{where}: candidate has the fields model and provider only")
    provider = candidate.get("provider")
    if provider is not None and (not isinstance(provider, str) or provider.strip().lower() not in PROVIDERS):
        raise ExperimentError(f"{where}: candidate.provider {provider!r} is unknown; use one of {', '.join(PROVIDERS)}")
    # The conditions are a rule's: parsed by the rules' own code, so they mean exactly what a rule's do.
    as_rule = {"name": name, "priority": 1, "match": item.get("match") or {}, "target": {"model": candidate["model"]}}
    for key in ("id", "org", "enabled"):
        if key in item:
            as_rule[key] = item[key]
    try:
        rule = parse_rule(as_rule, source, index, warnings=[])
    except RuleError as e:
        raise ExperimentError(str(e).replace(f"{source}: rule", f"{source}: experiment", 1)) from None
    return Experiment(
        id=rule.id,
        name=rule.name,
        enabled=rule.enabled,
        org=rule.org,
        feature=rule.feature,
        task=rule.task,
        provider=rule.provider,
        model=rule.model,
        candidate_provider=provider.strip().lower() if provider else None,
        candidate_model=candidate["model"].strip(),
        sample_rate=_number(item, "sample_rate", SAMPLE_RATE, where, 0.0, 1.0, "a share above 0, at most 1 (e.g. 0.1)"),
        max_requests_per_day=int(
            _number(
                item, "max_requests_per_day", MAX_REQUESTS_PER_DAY, where, 0, None, "a whole number of requests", int
            )
        ),
        max_usd_per_day=_number(item, "max_usd_per_day", MAX_USD_PER_DAY, where, 0.0, None, "US dollars (e.g. 2.5)"),
    )


def _number(item: dict, key: str, default: float, where: str, above: float, most: float | None, what: str, kind=float):
    value = item.get(key, default)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (kind is float or isinstance(value, int))
    if not ok or not value > above or (most is not None and value > most):
        raise ExperimentError(f"{where}: {key!r} must be {what}, not {value!r}")
    return value
