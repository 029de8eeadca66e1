"""The experiments file as the dashboard edits it: a recommendation becomes an experiment, stop,
resume, delete; validated as the proxy validates it, saved atomically, its header kept."""

from __future__ import annotations

import os

import pytest

from lectr.admin import experimentsfile
from lectr.common.experiments import (
    MAX_REQUESTS_PER_DAY,
    MAX_USD_PER_DAY,
    SAMPLE_RATE,
    ExperimentError,
    load_experiments_file,
)

HEADER = "# our experiments\n# notes stay\n\n"
TEXT = (
    HEADER
    + """experiments:
  - name: globex chat on mini
    id: chat-mini
    org: globex
    match: {feature: chat, provider: openai, model: gpt-4o}
    candidate: {model: gpt-4o-mini}
    sample_rate: 0.05
  - name: reasoning check
    match: {task: reasoning}
    candidate: {model: o3-mini}
    enabled: false
"""
)

REC = {
    "org_id": "acme",
    "feature": "triage",
    "provider": "openai",
    "current_model": "gpt-4o",
    "suggested_model": "gpt-4o-mini",
    "confidence": "medium",
}


@pytest.fixture
def path(tmp_path):
    p = tmp_path / "experiments.yaml"
    p.write_text(TEXT)
    return p


def test_read_keeps_file_order_and_header(path):
    doc = experimentsfile.read(path)
    assert [experimentsfile.experiment_id(e) for e in doc.experiments] == ["chat-mini", "reasoning-check"]
    assert doc.header == HEADER


def test_a_recommendation_becomes_an_experiment_in_a_new_file(tmp_path):
    path = tmp_path / "experiments.yaml"
    doc = experimentsfile.read(path)
    assert doc.experiments == []
    experiment = experimentsfile.from_recommendation(doc.experiments, REC)
    experimentsfile.save(path, doc, experimentsfile.put(doc.experiments, experiment))

    (parsed,) = load_experiments_file(path).experiments
    assert parsed.name == "acme triage: gpt-4o vs gpt-4o-mini"
    assert (parsed.org, parsed.feature, parsed.provider, parsed.model) == ("acme", "triage", "openai", "gpt-4o")
    assert (parsed.candidate_provider, parsed.candidate_model) == (None, "gpt-4o-mini")
    assert (parsed.sample_rate, parsed.max_requests_per_day, parsed.max_usd_per_day, parsed.enabled) == (
        SAMPLE_RATE,
        MAX_REQUESTS_PER_DAY,
        MAX_USD_PER_DAY,
        True,
    )
    assert path.read_text().startswith(experimentsfile.NEW_FILE_HEADER)  # says what the file is
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)


def test_an_enabled_experiment_on_the_same_traffic_refuses_a_second(path):
    doc = experimentsfile.read(path)
    same = {**REC, "org_id": "globex", "feature": "Chat", "suggested_model": "gpt-4.1-nano"}
    with pytest.raises(
        ExperimentError, match="'globex chat on mini' already samples globex's Chat traffic on openai/gpt-4o"
    ):
        experimentsfile.from_recommendation(doc.experiments, same)
    # Stopped, it no longer samples: another candidate may be tried on that traffic.
    stopped = experimentsfile.set_enabled(doc.experiments, "chat-mini", False)
    assert experimentsfile.from_recommendation(stopped, same)["candidate"] == {"model": "gpt-4.1-nano"}
    # Other traffic of the same org is other traffic.
    assert experimentsfile.from_recommendation(doc.experiments, {**same, "current_model": "gpt-4.1"})


def test_a_stopped_experiment_by_the_same_name_keeps_its_id_and_the_new_one_gets_another(path):
    doc = experimentsfile.read(path)
    first = experimentsfile.from_recommendation(doc.experiments, REC)
    rows = experimentsfile.set_enabled(
        experimentsfile.put(doc.experiments, first), "acme-triage-gpt-4o-vs-gpt-4o-mini", False
    )
    again = experimentsfile.from_recommendation(rows, REC)
    assert again["id"] == "acme-triage-gpt-4o-vs-gpt-4o-mini-2"
    experimentsfile.save(path, doc, experimentsfile.put(rows, again))
    assert [e.id for e in load_experiments_file(path).experiments][-2:] == [
        "acme-triage-gpt-4o-vs-gpt-4o-mini",
        "acme-triage-gpt-4o-vs-gpt-4o-mini-2",
    ]


def test_stop_resume_and_delete_round_trip_through_the_proxys_parser(path):
    os.chmod(path, 0o600)
    doc = experimentsfile.read(path)
    experimentsfile.save(path, doc, experimentsfile.set_enabled(doc.experiments, "chat-mini", False))
    assert [(e.id, e.enabled) for e in load_experiments_file(path).experiments] == [
        ("chat-mini", False),
        ("reasoning-check", False),
    ]
    assert path.read_text().startswith(HEADER)
    assert path.stat().st_mode & 0o777 == 0o600  # the file's mode stays

    doc = experimentsfile.read(path)
    rows = experimentsfile.set_enabled(doc.experiments, "reasoning-check", True)
    experimentsfile.save(path, doc, experimentsfile.delete(rows, "chat-mini"))
    [left] = load_experiments_file(path).experiments
    assert (left.id, left.enabled, left.task) == ("reasoning-check", True, "reasoning")
    with pytest.raises(ExperimentError, match="no experiment with id 'chat-mini'"):
        experimentsfile.delete(experimentsfile.read(path).experiments, "chat-mini")


def test_invalid_edits_are_refused_and_the_file_is_untouched(path):
    doc = experimentsfile.read(path)
    bad_rate = experimentsfile.put(
        doc.experiments, {**experimentsfile.from_recommendation(doc.experiments, REC), "sample_rate": 2}
    )
    with pytest.raises(ExperimentError, match="'sample_rate' must be a share above 0, at most 1"):
        experimentsfile.save(path, doc, bad_rate)
    duplicate = experimentsfile.put(doc.experiments, {**doc.experiments[0], "name": "again"})
    with pytest.raises(ExperimentError, match="id 'chat-mini' is already used"):
        experimentsfile.save(path, doc, duplicate)
    assert path.read_text() == TEXT
    assert not [p for p in os.listdir(path.parent) if p.endswith(".tmp")]


def test_a_file_changed_since_it_was_read_is_not_overwritten(path):
    doc = experimentsfile.read(path)
    path.write_text(TEXT + "  - {name: other, candidate: {model: m}}\n")
    with pytest.raises(ExperimentError, match="changed by someone else"):
        experimentsfile.save(path, doc, experimentsfile.delete(doc.experiments, "chat-mini"))
    assert "other" in path.read_text()


def test_a_file_created_since_an_empty_read_is_not_overwritten(tmp_path):
    path = tmp_path / "experiments.yaml"
    doc = experimentsfile.read(path)
    path.write_text(TEXT)
    with pytest.raises(ExperimentError, match="changed by someone else"):
        experimentsfile.save(path, doc, [experimentsfile.from_recommendation([], REC)])
    assert path.read_text() == TEXT


def test_a_file_the_proxy_rejects_cannot_be_edited(path):
    path.write_text("experiments: [{name: x}]\n")
    with pytest.raises(ExperimentError, match="'candidate' is required"):
        experimentsfile.read(path)
    path.write_bytes(b"experiments: []\n# caf\xe9\n")
    with pytest.raises(ExperimentError, match="not UTF-8"):
        experimentsfile.read(path)


def test_an_enabled_experiment_that_matches_more_than_the_traffic_refuses_too(path):
    """Refused whenever the proxy would give this traffic's samples to another experiment: the first enabled one
    that matches (as `Experiments.first_match` picks), whatever else it matches too."""
    doc = experimentsfile.read(path)
    broad = {"name": "every gpt-4o", "match": {"provider": "openai", "model": "gpt-4o"}, "candidate": {"model": "m"}}
    rows = experimentsfile.put(doc.experiments, broad)
    with pytest.raises(ExperimentError, match="experiment 'every gpt-4o' already samples acme's triage traffic"):
        experimentsfile.from_recommendation(rows, REC)
    # On task alone (the enabled reasoning one): a recommendation's traffic is not known to be of that task.
    tasks = experimentsfile.set_enabled(doc.experiments, "reasoning-check", True)
    assert experimentsfile.from_recommendation(tasks, REC)["match"] == {
        "feature": "triage",
        "provider": "openai",
        "model": "gpt-4o",
    }


def test_a_provider_switch_is_tested_on_the_provider_it_switches_to(tmp_path):
    switch = {
        **REC,
        "suggested_model": "claude-haiku-4-5",
        "rule_yaml": "- name: acme triage\n  match: {feature: triage}\n"
        "  target: {provider: anthropic, model: claude-haiku-4-5}\n",
    }
    experiment = experimentsfile.from_recommendation([], switch)
    assert experiment["candidate"] == {"model": "claude-haiku-4-5", "provider": "anthropic"}
    assert experiment["name"] == "acme triage: gpt-4o vs anthropic/claude-haiku-4-5"
    path = tmp_path / "experiments.yaml"
    experimentsfile.save(path, experimentsfile.read(path), [experiment])
    (parsed,) = load_experiments_file(path).experiments
    assert (parsed.candidate_provider, parsed.candidate_model) == ("anthropic", "claude-haiku-4-5")
    # The same model family's rule (no target.provider), or no rule at all: the candidate's provider is the traffic's.
    same = {**REC, "rule_yaml": "- name: x\n  target: {model: gpt-4o-mini}\n"}
    assert experimentsfile.from_recommendation([], same)["candidate"] == {"model": "gpt-4o-mini"}
    assert experimentsfile.target_provider({**REC, "rule_yaml": "[unclosed"}) is None
