"""`lectr rules|experiments import|export` (and `rules check --file db`): the YAML files in and out of the
store, on a DuckDB file and on a real PostgreSQL, checked by the proxy's own parsers."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from lectr.admin import cli
from lectr.common.experiments import ExperimentError, parse_experiments
from lectr.common.rules import RuleError, parse_rules
from lectr.store import open_store

RULES = """# Our routing rules: kept in git, imported into the database.
rules:
  - name: Classifiers to mini   # cheap and as good for labels
    priority: 1
    match: {task: classification, model: gpt-4o}
    target: {model: gpt-4o-mini}
  - name: Digest on Groq
    priority: 5
    enabled: false
    match: {feature: digest}
    target: {provider: groq, model: llama-3.1-8b-instant}
"""
EXPERIMENTS = """# Shadow tests
experiments:
  - name: triage on mini
    match: {feature: triage, model: gpt-4o}
    candidate: {model: gpt-4o-mini}
    sample_rate: 0.05
"""
TEXTS = {"rules": RULES, "experiments": EXPERIMENTS}
# A second rule at the first one's priority; an experiment without a candidate.
INVALID = {
    "rules": RULES.replace("priority: 5", "priority: 1"),
    "experiments": EXPERIMENTS.replace("candidate: {model: gpt-4o-mini}", "sample_rate: 0.5"),
}
PARSERS = {"rules": (parse_rules, RuleError), "experiments": (parse_experiments, ExperimentError)}


@pytest.fixture(params=["duckdb", pytest.param("postgresql", marks=pytest.mark.slow)])
def db(request, tmp_path) -> str:
    """A DuckDB file's path, or a fresh PostgreSQL database's URL."""
    return str(tmp_path / "lectr.duckdb") if request.param == "duckdb" else request.getfixturevalue("pg_url")


@pytest.mark.parametrize("name", ["rules", "experiments"])
def test_import_then_export_gives_back_the_file_byte_for_byte(db, name, tmp_path, capsys):
    path = tmp_path / f"{name}.yaml"
    path.write_text(TEXTS[name])
    store = open_store(db)
    said = {"rules": "2 rules, 1 enabled", "experiments": "1 experiment, 1 running"}[name]

    assert cli.main([name, "import", str(path), "--db", db]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Imported {path} into {store.display}: version 1 of the {name}, {said}.\n")
    assert store.document(name) == (TEXTS[name], 1)
    assert cli.main([name, "import", str(path), "--db", db]) == 0  # again: a new version, whatever was there
    assert "version 2 of the" in capsys.readouterr().out

    assert cli.main([name, "export", "--db", db]) == 0
    assert capsys.readouterr().out == TEXTS[name]  # stdout is the file alone, comments and all
    exported = tmp_path / "exported" / f"{name}.yaml"
    exported.parent.mkdir()
    assert cli.main([name, "export", str(exported), "--db", db]) == 0
    assert exported.read_text() == TEXTS[name]
    assert capsys.readouterr().out == f"Exported version 2 of the {name} document in {store.display} to {exported}.\n"


@pytest.mark.parametrize("name", ["rules", "experiments"])
def test_an_invalid_file_is_refused_with_the_parsers_message_and_nothing_changes(db, name, tmp_path, capsys):
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(TEXTS[name])
    bad.write_text(INVALID[name])
    assert cli.main([name, "import", str(good), "--db", db]) == 0
    capsys.readouterr()
    parse, error = PARSERS[name]
    with pytest.raises(error) as refused:  # what the proxy would say of it, and log, keeping the last good ones
        parse(INVALID[name], str(bad))

    assert cli.main([name, "import", str(bad), "--db", db]) == 1
    assert capsys.readouterr().err == f"lectr: {refused.value}\n"
    assert open_store(db).document(name) == (TEXTS[name], 1)


def test_an_empty_or_missing_file_is_refused_and_an_export_of_nothing_says_what_to_do(tmp_path, capsys):
    db = str(tmp_path / "lectr.duckdb")
    empty = tmp_path / "empty.yaml"
    empty.write_text("\n")
    assert cli.main(["rules", "export", "--db", db]) == 1
    assert "no database at" in capsys.readouterr().err
    assert cli.main(["rules", "import", str(empty), "--db", db]) == 1
    assert capsys.readouterr().err == (
        f"lectr: {empty} is empty; to remove every one of the rules, import a file that says 'rules: []'\n"
    )
    assert cli.main(["rules", "import", str(tmp_path / "none.yaml"), "--db", db]) == 1
    assert capsys.readouterr().err == f"lectr: cannot read {tmp_path / 'none.yaml'}: No such file or directory\n"

    open_store(db).save_document("rules", "rules: []\n", None)
    assert cli.main(["experiments", "export", "--db", db]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"lectr: no experiments in {db} yet. Import a file: lectr experiments import FILE (with the same --db)\n"
    )


def test_rules_check_reads_the_rules_kept_in_postgresql_and_no_message_shows_the_password(pg_url, tmp_path, capsys):
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    password = urlsplit(pg_url).password
    assert password
    assert cli.main(["rules", "check", "--file", "db", "--db", pg_url]) == 1
    assert cli.main(["rules", "import", str(path), "--db", pg_url]) == 0
    assert cli.main(["rules", "check", "--file", "db", "--db", pg_url]) == 0
    captured = capsys.readouterr()
    display = open_store(pg_url).display
    assert f"lectr: no rules in {display} yet: every request passes through unchanged." in captured.err
    assert captured.out.splitlines()[-1] == f"the rules document in {display}: 2 rules, 1 enabled"
    assert "classifiers-to-mini" in captured.out
    assert password not in captured.out + captured.err
