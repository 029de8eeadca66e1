"""The experiments as a document the dashboard edits: read, change, validate, save whole.

As the rules are (lectr.admin.rulesfile, whose file handling this shares): edits work on the
experiments as plain mappings, `experiments.parse_experiments` validates the result before
anything is written, and a save replaces the file in one rename (or the experiments document in
the store, with `lectr_experiments=db`), which the proxy picks up within a second. Stopping an
experiment (`enabled: false`) keeps it in the document, and its results in the database stay its
evidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lectr.admin import yamlfile
from lectr.common.experiments import (
    MAX_REQUESTS_PER_DAY,
    MAX_USD_PER_DAY,
    SAMPLE_RATE,
    ExperimentError,
    Experiments,
    parse_experiments,
)

# Above the list in a file the dashboard creates: what the file is, for whoever opens it.
NEW_FILE_HEADER = (
    "# Lectr shadow experiments: a share of matching requests is sent again to a candidate model,\n"
    "# with Lectr's own key, and the answers compared (see lectr/common/experiments.py).\n"
    "# Edited by the dashboard's Recommendations page; comments above `experiments:` are kept.\n"
)


@dataclass(frozen=True)
class ExperimentsDoc:
    experiments: list[dict] = field(default_factory=list)  # as in the file, in file order
    header: str = NEW_FILE_HEADER  # the comment block above `experiments:`, kept verbatim on save
    version: str = ""  # of the text read ("": none): a save refuses to overwrite experiments changed since


experiment_id = yamlfile.item_id  # the id the proxy records for an experiment, as for a rule


def read(where: str | Path | yamlfile.Source) -> ExperimentsDoc:
    """The experiments in a file (a path) or the store (yamlfile.source); missing ones are an empty
    document. Raises ExperimentError (a RuleError) for experiments the proxy would reject (they must be
    fixed by hand first), StorageError if the store cannot be reached."""
    experiments, header, version = yamlfile.read_document(where, "experiments", parse_experiments, ExperimentError)
    return ExperimentsDoc(experiments, header, version) if version else ExperimentsDoc()


def render(doc: ExperimentsDoc, experiments: list[dict]) -> str:
    return doc.header + yamlfile.dump("experiments", experiments)


def validate(experiments: list[dict], source: str = "experiments file") -> Experiments:
    """The parsed experiments. Raises ExperimentError naming the experiment and the problem."""
    return parse_experiments(yaml.safe_dump({"experiments": experiments}, sort_keys=False), source)


def save(where: str | Path | yamlfile.Source, doc: ExperimentsDoc, experiments: list[dict]) -> Experiments:
    """Validate and write `experiments` in place of the document `doc` was read from, whole."""
    parsed = validate(experiments, str(where))
    yamlfile.replace(where, render(doc, experiments), doc.version, ExperimentError)
    return parsed


def target_provider(rec_row: dict) -> str | None:
    """The provider a recommendation switches to (its rule's target.provider), or None: the same one."""
    try:
        rules = yaml.safe_load(rec_row.get("rule_yaml") or "")
    except yaml.YAMLError:
        return None  # a recommendation whose rule cannot be read names no switch; the rule is refused where added
    target = rules[0].get("target") if isinstance(rules, list) and rules and isinstance(rules[0], dict) else None
    provider = target.get("provider") if isinstance(target, dict) else None
    return provider if isinstance(provider, str) and provider.strip() else None


# --- edits: each returns a new list or mapping, leaving the argument unchanged ----------------


def from_recommendation(experiments: list[dict], rec_row: dict) -> dict:
    """The experiment that shadow-tests a recommendation (a `recommendations` row): a share of its
    traffic sent to the suggested model (on the provider its rule switches to, if any), with the
    default sample rate and caps, enabled. Refused while an enabled experiment would take that
    traffic's samples already (the proxy gives a request to the first that matches)."""
    org, feature, provider, current, suggested = (
        rec_row[k] for k in ("org_id", "feature", "provider", "current_model", "suggested_model")
    )
    running = validate(experiments).first_match(org, feature, None, provider, current)
    if running is not None:
        raise ExperimentError(
            f"experiment {running.name!r} already samples {org}'s {feature} traffic on {provider}/{current}: "
            "stop it first to start another"
        )
    switch = target_provider(rec_row)
    candidate = {"model": suggested, "provider": switch} if switch else {"model": suggested}
    experiment = {
        "name": f"{org} {feature}: {current} vs {f'{switch}/' if switch else ''}{suggested}",
        "org": org,
        "match": {"feature": feature, "provider": provider, "model": current},
        "candidate": candidate,
        "sample_rate": SAMPLE_RATE,
        "max_requests_per_day": MAX_REQUESTS_PER_DAY,
        "max_usd_per_day": MAX_USD_PER_DAY,
        "enabled": True,
    }
    taken = {experiment_id(e) for e in experiments}
    if experiment_id(experiment) in taken:  # a stopped one by the same name: its evidence stays its own
        base = experiment_id(experiment)
        n = 2
        while f"{base}-{n}" in taken:
            n += 1
        experiment = {"id": f"{base}-{n}", **experiment}
    return experiment


def put(experiments: list[dict], experiment: dict) -> list[dict]:
    return [*experiments, experiment]


def set_enabled(experiments: list[dict], eid: str, enabled: bool) -> list[dict]:
    return yamlfile.set_enabled(experiments, eid, enabled, "experiment", ExperimentError)


def delete(experiments: list[dict], eid: str) -> list[dict]:
    return yamlfile.delete(experiments, eid, "experiment", ExperimentError)
