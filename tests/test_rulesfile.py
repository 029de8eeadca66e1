"""The rules file as the dashboard edits it: edits, validation, atomic save, header kept."""

from __future__ import annotations

import os

import pytest

from lectr.admin import rulesfile, yamlfile
from lectr.common.rules import RuleError, load_rules_file, parse_rules
from lectr.store import open_store

HEADER = "# Lectr rules\n# hand-written notes stay\n\n"
TEXT = (
    HEADER
    + """rules:
  - name: Classifiers to mini
    priority: 1
    match: {task: classification, model: gpt-4o}
    target: {model: gpt-4o-mini}
  - name: Digest on Groq
    id: digest
    priority: 5
    enabled: false
    match: {feature: digest}
    target: {provider: groq, model: llama-3.1-8b-instant}
"""
)


@pytest.fixture
def path(tmp_path):
    p = tmp_path / "rules.yaml"
    p.write_text(TEXT)
    return p


def test_read_keeps_file_order_ids_and_header(path):
    doc = rulesfile.read(path)
    assert [rulesfile.rule_id(r) for r in doc.rules] == ["classifiers-to-mini", "digest"]
    assert doc.header == HEADER


def test_a_missing_file_is_an_empty_document_and_save_creates_it(tmp_path):
    path = tmp_path / "rules.yaml"
    doc = rulesfile.read(path)
    assert doc.rules == []
    rulesfile.save(path, doc, rulesfile.put(doc.rules, {"name": "x", "priority": 1, "target": {"model": "m"}}))
    assert [r.id for r in load_rules_file(path).rules] == ["x"]


def test_add_edit_toggle_delete_round_trip_through_the_proxys_parser(path):
    doc = rulesfile.read(path)
    new = {
        "name": "Extraction small",
        "priority": 3,
        "enabled": True,
        "org": "",
        "match": {"feature": "", "task": "extraction", "provider": "", "model": "gpt-4.1"},
        "target": {"provider": "", "model": "gpt-4.1-mini"},
    }
    rules = rulesfile.put(doc.rules, new)
    rules = rulesfile.set_enabled(rules, "digest", True)
    rules = rulesfile.put(rules, {**rules[0], "target": {"model": "gpt-4.1-nano"}}, replacing="classifiers-to-mini")
    rulesfile.save(path, doc, rules)
    parsed = load_rules_file(path)
    assert [(r.id, r.priority, r.enabled) for r in parsed.rules] == [
        ("classifiers-to-mini", 1, True),
        ("extraction-small", 3, True),
        ("digest", 5, True),
    ]
    extraction = parsed.rules[1]
    assert (extraction.task, extraction.model, extraction.org, extraction.feature) == (
        "extraction",
        "gpt-4.1",
        None,
        None,
    )  # blank form fields mean "any", not ""
    assert parsed.rules[0].target_model == "gpt-4.1-nano"
    assert path.read_text().startswith(HEADER)

    doc = rulesfile.read(path)
    rulesfile.save(path, doc, rulesfile.delete(doc.rules, "extraction-small"))
    assert [r.id for r in load_rules_file(path).rules] == ["classifiers-to-mini", "digest"]


def test_move_swaps_priorities_with_the_neighbour_in_evaluation_order(path):
    rules = rulesfile.read(path).rules
    moved = rulesfile.move(rules, "digest", -1)
    assert {rulesfile.rule_id(r): r["priority"] for r in moved} == {"classifiers-to-mini": 5, "digest": 1}
    assert rulesfile.move(rules, "classifiers-to-mini", -1) == rules  # already first


def test_invalid_edits_are_refused_and_the_file_is_untouched(path):
    doc = rulesfile.read(path)
    duplicate = rulesfile.put(doc.rules, {"name": "dup", "priority": 5, "target": {"model": "m"}})
    with pytest.raises(RuleError, match="priority 5 is already used by rule 'Digest on Groq'"):
        rulesfile.save(path, doc, duplicate)
    empty_target = rulesfile.put(doc.rules, {"name": "t", "priority": 9, "target": {"model": "", "provider": ""}})
    with pytest.raises(RuleError, match="'target' is required"):
        rulesfile.save(path, doc, empty_target)
    assert path.read_text() == TEXT
    assert not [p for p in os.listdir(path.parent) if p.endswith(".tmp")]


def test_an_unknown_task_is_a_warning_not_an_error(path):
    doc = rulesfile.read(path)
    saved = rulesfile.save(
        path,
        doc,
        rulesfile.put(
            doc.rules, {"name": "t", "priority": 9, "match": {"task": "translation"}, "target": {"model": "m"}}
        ),
    )
    assert any("'translation' is not one of" in w for w in saved.warnings)
    assert "translation" in path.read_text()


def test_a_file_changed_since_it_was_read_is_not_overwritten(path):
    doc = rulesfile.read(path)
    path.write_text(TEXT + "  - {name: other, priority: 7, target: {model: m}}\n")
    with pytest.raises(RuleError, match="changed by someone else"):
        rulesfile.save(path, doc, rulesfile.delete(doc.rules, "digest"))
    assert "other" in path.read_text()


def test_a_file_the_proxy_rejects_cannot_be_edited(path):
    path.write_text("rules: [{name: x}]\n")
    with pytest.raises(RuleError, match="'priority' is required"):
        rulesfile.read(path)


def test_a_recommendation_becomes_a_rule_at_a_free_priority(path):
    rules = rulesfile.read(path).rules
    rule_yaml = (
        "- name: 'bot: gpt-4o -> gpt-4o-mini'\n  priority: 5\n  org: acme\n  match: {feature: bot}\n"
        "  target: {model: gpt-4o-mini}\n"
    )
    rule = rulesfile.from_recommendation(rules, rule_yaml, enabled=False)
    assert (rule["priority"], rule["enabled"], rule["org"]) == (6, False, "acme")
    with pytest.raises(RuleError, match="already in the rules file"):
        rulesfile.from_recommendation([*rules, rule], rule_yaml, enabled=True)


def test_the_rules_document_in_the_store_is_edited_as_the_file_is_and_a_newer_save_wins(tmp_path):
    db = str(tmp_path / "lectr.duckdb")
    store = open_store(db)
    store.save_document("experiments", "experiments: []\n", None)  # the database, without rules yet
    where = yamlfile.source("db", db, "rules")
    assert str(where) == f"the rules document in {db}"
    empty = rulesfile.read(where)
    assert (empty.rules, empty.version) == ([], "")
    store.save_document("rules", TEXT, None)  # someone imports the rules meanwhile
    with pytest.raises(RuleError, match=f"the rules document in {db} was changed by someone else"):
        rulesfile.save(where, empty, [{"name": "x", "priority": 1, "target": {"model": "m"}}])

    doc = rulesfile.read(where)
    assert (doc.header, doc.version) == (HEADER, "1")
    rulesfile.save(where, doc, rulesfile.set_enabled(doc.rules, "digest", True))
    text, version = store.document("rules")
    assert version == 2 and text.startswith(HEADER)  # the comments stay
    assert all(r.enabled for r in parse_rules(text).rules)
    with pytest.raises(RuleError, match="changed by someone else"):  # `doc` is version 1
        rulesfile.save(where, doc, rulesfile.delete(doc.rules, "digest"))
    assert store.document("rules") == (text, 2)


def test_a_stored_document_the_proxy_rejects_is_fixed_through_export_and_import(tmp_path):
    db = str(tmp_path / "lectr.duckdb")
    open_store(db).save_document("rules", "rules: [{name: x}]\n", None)  # written past the checks (SQL, by hand)
    with pytest.raises(RuleError, match=r"'priority' is required.*'lectr rules export'.*'lectr rules import'"):
        rulesfile.read(yamlfile.source("db", db, "rules"))
