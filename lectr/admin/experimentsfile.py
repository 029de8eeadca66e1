"""The experiments file as a document the dashboard edits: read, change, validate, save atomically.

As the rules file is (lectr.admin.rulesfile, whose file handling this shares): edits work on
the experiments as plain mappings, `experiments.parse_experiments` validates the result before
anything is written, and a save replaces the file in one rename, which the proxy picks up within
a second. Stopping an experiment (`enabled: false`) keeps it in the file, and its results in the
database stay its evidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lectr.admin import rulesfile
from lectr.common.experiments import (
    MAX_REQUESTS_PER_DAY,
    MAX_USD_PER_DAY,
    SAMPLE_RATE,
    Experiment,
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
    signature: str = ""  # of the text read ("": no file): a save refuses to overwrite a file changed since


def experiment_id(experiment: dict) -> str:
    """The id the proxy records for an experiment: its `id`, else its name slugged (as for a rule)."""
    return rulesfile.rule_id(experiment)


def read(path: str | Path) -> ExperimentsDoc:
    """The experiments file's contents; a missing file is an empty document. Raises ExperimentError
    (a RuleError) for a file the proxy would reject: it must be fixed by hand first."""
    experiments, header, signature = rulesfile.read_document(path, "experiments", parse_experiments, ExperimentError)
    return ExperimentsDoc(experiments, header, signature) if signature else ExperimentsDoc()


def render(doc: ExperimentsDoc, experiments: list[dict]) -> str:
    return doc.header + rulesfile.dump("experiments", experiments)


def validate(experiments: list[dict], source: str = "experiments file") -> Experiments:
    """The parsed experiments. Raises ExperimentError naming the experiment and the problem."""
    return parse_experiments(yaml.safe_dump({"experiments": experiments}, sort_keys=False), source)


def save(path: str | Path, doc: ExperimentsDoc, experiments: list[dict]) -> Experiments:
    """Validate and write `experiments` in place of the document `doc` was read from, atomically."""
    parsed = validate(experiments, str(path))
    rulesfile.replace(path, render(doc, experiments), doc.signature, ExperimentError)
    return parsed


def on_traffic(
    experiments: Experiments, org: str | None, feature: str | None, provider: str, model: str
) -> list[Experiment]:
    """The experiments that sample exactly this traffic (org, feature, provider, model), in file order,
    as a recommendation names it. Features and providers compare case-insensitively, as rules match."""
    wanted = (org, (feature or "").lower() or None, provider.lower(), model)
    return [e for e in experiments.experiments if (e.org, e.feature, e.provider, e.model) == wanted]


# --- edits: each returns a new list or mapping, leaving the argument unchanged ----------------


def from_recommendation(experiments: list[dict], rec_row: dict) -> dict:
    """The experiment that shadow-tests a recommendation (a `recommendations` row): a share of its
    traffic sent to the suggested model, with the default sample rate and caps, enabled. Refused
    while an enabled experiment samples the same traffic already."""
    org, feature, provider, current, suggested = (
        rec_row[k] for k in ("org_id", "feature", "provider", "current_model", "suggested_model")
    )
    running = [e for e in on_traffic(validate(experiments), org, feature, provider, current) if e.enabled]
    if running:
        raise ExperimentError(
            f"experiment {running[0].name!r} already shadow-tests {org}'s {feature} traffic on "
            f"{provider}/{current}: stop it first to start another"
        )
    name = f"{org} {feature}: {current} vs {suggested}"
    experiment = {
        "name": name,
        "org": org,
        "match": {"feature": feature, "provider": provider, "model": current},
        "candidate": {"model": suggested},
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
    index = _index(experiments, eid)
    return [*experiments[:index], {**experiments[index], "enabled": enabled}, *experiments[index + 1 :]]


def delete(experiments: list[dict], eid: str) -> list[dict]:
    index = _index(experiments, eid)
    return experiments[:index] + experiments[index + 1 :]


def _index(experiments: list[dict], eid: str) -> int:
    for index, experiment in enumerate(experiments):
        if experiment_id(experiment) == eid:
            return index
    raise ExperimentError(
        f"no experiment with id {eid!r} in the experiments file; it may have been removed: reload the page"
    )
