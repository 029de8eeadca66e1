"""The dashboard's pages, run with Streamlit's AppTest against a database filled through the real proxy.

`scripts/demo.py` sends mixed traffic through a real `mitmdump -s addons/lectr.py` to the
simulator, copies it back over two days of history and runs the background jobs; the
figures each page shows are checked against SQL on the same file.
"""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import datetime, time, timedelta
from pathlib import Path

import duckdb
import pytest
import streamlit as st
import yaml
from openai import OpenAI
from streamlit.testing.v1 import AppTest

from lectr import rulesfile, storage
from lectr.rules import load_rules_file

from conftest import ROOT, start_lectr, stop, wait_until

APP = str(ROOT / "dashboard" / "app.py")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A database with demo traffic from the real proxy path, and the rules file it was routed by."""
    work = tmp_path_factory.mktemp("demo")
    db, rules = work / "demo.duckdb", work / "rules.yaml"
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "demo.py"),
            "--db",
            str(db),
            "--rules",
            str(rules),
            "--requests",
            "300",
            "--spike",
            "60",
            "--history-days",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return db, rules


@pytest.fixture
def app(demo, monkeypatch, tmp_path):
    """The app on a copy of the demo database and rules file, so edits in one test stay there."""
    db, rules = tmp_path / "lectr.duckdb", tmp_path / "rules.yaml"
    db.write_bytes(demo[0].read_bytes())
    rules.write_text(demo[1].read_text())
    return _app(monkeypatch, db, rules)


def _app(monkeypatch, db: Path, rules: Path) -> AppTest:
    monkeypatch.setenv("LECTR_DB", str(db))
    monkeypatch.setenv("LECTR_RULES", str(rules))
    at = AppTest.from_file(APP, default_timeout=60)
    at.db, at.rules = db, rules  # for the assertions
    return at.run()


def sql(db: Path, query: str, params: list | None = None):
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(query, params or []).fetchall()


def since_24h() -> datetime:
    return (storage.utc_now() - timedelta(hours=24)).replace(minute=0, second=0, microsecond=0)


def log_start() -> datetime:
    """The request log's time range is in whole days: from the start of the period's first day."""
    return datetime.combine(since_24h().date(), time.min)


def form(at: AppTest, name: str, field: str) -> str:
    """A rules-page form widget's key: it carries the rules file's version (see dashboard/views/rules.py)."""
    return f"{name}_{rulesfile.read(at.rules).signature[:8]}_{field}"


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def no_errors(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def test_overview_shows_the_orgs_figures_from_the_summaries(app):
    no_errors(app)
    assert app.selectbox(key="org").options == ["acme", "globex", "initech"]
    assert app.title[0].value == "Overview · acme"
    [(requests, routed, errors, cost)] = sql(
        app.db,
        "SELECT count(*), count(rule_id), count(error_category), sum(cost_usd) FROM request_logs "
        "WHERE org_id = 'acme' AND ts >= ?",
        [since_24h()],
    )
    assert metric(app, "Requests") == f"{requests:,}"
    assert metric(app, "Routing coverage") == f"{100 * routed / requests:.1f}%"
    assert metric(app, "Error rate") == f"{100 * errors / requests:.1f}%"
    assert metric(app, "Cost") == f"${cost:,.2f}"
    coverage = app.dataframe[0].value.set_index("rule")
    assert (
        coverage.loc["Downgrade classifiers to mini", "requests"]
        == sql(
            app.db,
            "SELECT count(*) FROM request_logs WHERE org_id = 'acme' AND ts >= ? "
            "AND rule_id = 'downgrade-classifiers-to-mini'",
            [since_24h()],
        )[0][0]
    )
    assert coverage.loc["passed through (no rule)", "requests"] == requests - routed
    assert len(app.get("vega_lite_chart")) == 8  # six time series, cost by feature, cost by model
    assert not app.warning  # the demo's proxy wrote a moment ago, and nothing was dropped


def test_overview_for_another_org_and_a_longer_period(app):
    app.selectbox(key="org").set_value("globex")
    app.selectbox(key="period").set_value("Last 7 days").run()
    no_errors(app)
    [(requests,)] = sql(app.db, "SELECT count(*) FROM request_logs WHERE org_id = 'globex'")
    assert metric(app, "Requests") == f"{requests:,}"  # all of the demo's two days of history


def test_degradation_banners_for_dropped_events_and_a_silent_proxy(app, monkeypatch):
    with duckdb.connect(str(app.db)) as con:
        con.execute("INSERT INTO dropped_events VALUES (?, 'queue_full', 37)", [storage.utc_now()])
        con.execute("UPDATE worker_runs SET last_run = last_run - INTERVAL 2 HOUR WHERE worker = 'writer'")
    st.cache_data.clear()  # what a user sees once the page's 5-second cache has expired
    app.run()
    assert any("37 events were dropped" in e.value for e in app.error)
    assert any("last write to this database was 2 h ago" in w.value for w in app.warning)


def test_request_log_filters_and_pages_in_sql(app):
    app.switch_page("views/requests.py").run()
    no_errors(app)
    [(total,)] = sql(app.db, "SELECT count(*) FROM request_logs WHERE org_id = 'acme' AND ts >= ?", [log_start()])
    assert f"{total:,} requests match" in app.caption[0].value
    assert len(app.dataframe[0].value) == 50
    app.number_input(key="page").set_value(3).run()
    third = sql(
        app.db,
        "SELECT request_id FROM request_logs WHERE org_id = 'acme' AND ts >= ? "
        "ORDER BY ts DESC, request_id LIMIT 50 OFFSET 100",
        [log_start()],
    )
    assert list(app.dataframe[0].value["request_id"]) == [r for (r,) in third]
    app.number_input(key="page").set_value(1).run()

    app.selectbox(key="filter_task").set_value("classification")
    app.selectbox(key="filter_rule").set_value("Downgrade classifiers to mini").run()
    no_errors(app)
    rows = app.dataframe[0].value
    [(expected,)] = sql(
        app.db,
        "SELECT count(*) FROM request_logs WHERE org_id = 'acme' AND ts >= ? AND "
        "task = 'classification' AND rule_name = 'Downgrade classifiers to mini'",
        [log_start()],
    )
    assert expected > 0 and f"{expected:,} requests match" in app.caption[0].value
    assert set(rows["task"]) == {"classification"}
    assert set(zip(rows["model_requested"], rows["model_actual"], rows["route"])) == {("gpt-4o", "gpt-4o-mini", "⇄")}
    priced = rows[rows["cost_usd"].notna()]
    assert len(priced) and set(priced["price_source"]) == {"bundled"}  # where each row's price came from

    app.selectbox(key="filter_rule").set_value("All")
    app.selectbox(key="filter_task").set_value("All")
    app.selectbox(key="filter_outcome").set_value("rate_limit").run()
    rows = app.dataframe[0].value
    assert len(rows) and set(rows["status_code"]) == {429}

    app.selectbox(key="filter_outcome").set_value("All")
    assert "(none)" not in app.selectbox(key="filter_feature").options  # acme tags every request
    app.selectbox(key="org").set_value("initech").run()
    app.selectbox(key="filter_feature").set_value("(none)").run()
    [(untagged,)] = sql(
        app.db,
        "SELECT count(*) FROM request_logs WHERE org_id = 'initech' AND ts >= ? AND feature IS NULL",
        [log_start()],
    )
    assert untagged > 0 and f"{untagged:,} requests match" in app.caption[0].value
    assert set(app.dataframe[0].value["feature"]) == {"(untagged)"}


def test_rules_page_lists_rules_with_match_counts(app):
    app.switch_page("views/rules.py").run()
    no_errors(app)
    table = app.dataframe[0].value
    file_rules = load_rules_file(app.rules).rules
    assert list(table["name"]) == [r.name for r in file_rules]  # priority order
    counts = dict(
        sql(
            app.db,
            "SELECT rule_id, count(*) FROM request_logs WHERE rule_id IS NOT NULL AND ts >= ? GROUP BY ALL",
            [since_24h()],
        )
    )
    assert counts  # the demo's traffic was routed
    assert dict(zip(table["id"], table["matches 24 h"])) == {r.id: counts.get(r.id, 0) for r in file_rules}


def test_rules_are_created_edited_reordered_toggled_and_deleted_in_the_file(app):
    app.switch_page("views/rules.py").run()
    app.text_input(key=form(app, "add", "name")).input("Dashboard rule")
    app.number_input(key=form(app, "add", "priority")).set_value(4)
    app.text_input(key=form(app, "add", "feature")).input("search")
    app.text_input(key=form(app, "add", "model")).input("gemini-2.5-pro")
    app.text_input(key=form(app, "add", "target_model")).input("gemini-2.5-flash")
    app.button(key=form(app, "add", "submit")).click().run()
    no_errors(app)
    assert any("Added 'Dashboard rule'" in s.value for s in app.success)
    added = next(r for r in load_rules_file(app.rules).rules if r.id == "dashboard-rule")
    assert (added.priority, added.enabled, added.feature, added.model, added.target_model, added.org) == (
        4,
        True,
        "search",
        "gemini-2.5-pro",
        "gemini-2.5-flash",
        None,
    )

    app.selectbox(key="rule_selected").set_value("dashboard-rule").run()
    app.button(key="rule_up").click().run()
    priorities = {r.id: r.priority for r in load_rules_file(app.rules).rules}
    assert priorities["dashboard-rule"] == 3 and priorities["digest-summaries-on-groq"] == 4

    app.button(key="rule_toggle").click().run()
    assert not next(r for r in load_rules_file(app.rules).rules if r.id == "dashboard-rule").enabled

    app.text_input(key=form(app, "edit_dashboard-rule", "target_model")).input("gemini-2.5-flash-lite")
    app.button(key=form(app, "edit_dashboard-rule", "submit")).click().run()
    assert next(r for r in load_rules_file(app.rules).rules if r.id == "dashboard-rule").target_model == (
        "gemini-2.5-flash-lite"
    )

    app.selectbox(key="rule_selected").set_value("dashboard-rule").run()
    app.button(key="rule_delete").click().run()
    assert "dashboard-rule" not in {r.id for r in load_rules_file(app.rules).rules}
    assert app.rules.read_text().startswith("# Lectr routing rules.")  # the example's comments stay


def test_rule_validation_messages(app):
    app.switch_page("views/rules.py").run()
    before = app.rules.read_text()
    app.text_input(key=form(app, "add", "name")).input("Clash")
    app.number_input(key=form(app, "add", "priority")).set_value(1)
    app.text_input(key=form(app, "add", "target_model")).input("gpt-4o-mini")
    app.button(key=form(app, "add", "submit")).click().run()
    assert any("priority 1 is already used by rule 'Downgrade classifiers to mini'" in e.value for e in app.error)
    assert app.rules.read_text() == before

    app.number_input(key=form(app, "add", "priority")).set_value(30)
    app.text_input(key=form(app, "add", "target_model")).input("")
    app.button(key=form(app, "add", "submit")).click().run()
    assert any("'target' is required" in e.value for e in app.error)
    assert app.rules.read_text() == before

    app.text_input(key=form(app, "add", "task")).input("translation")
    app.text_input(key=form(app, "add", "target_model")).input("gpt-4o-mini")
    app.button(key=form(app, "add", "submit")).click().run()
    assert any("'translation' is not one of" in w.value for w in app.warning)  # a warning; the rule is saved
    assert "clash" in {r.id for r in load_rules_file(app.rules).rules}


def test_recommendations_show_evidence_and_become_disabled_or_enabled_rules(app):
    app.switch_page("views/recommendations.py").run()
    no_errors(app)
    stored = sql(
        app.db,
        "SELECT feature, current_model, suggested_model, confidence, monthly_saving_usd, rule_yaml "
        "FROM recommendations WHERE org_id = 'acme' ORDER BY CASE confidence WHEN 'high' THEN 0 "
        "WHEN 'medium' THEN 1 ELSE 2 END, monthly_saving_usd DESC",
    )
    assert stored
    assert all(model != "o3" for _, model, *_ in stored)  # research is reasoning: never downgraded
    saving = sum(row[4] for row in stored)
    assert metric(app, "Estimated saving if all are applied") == f"${saving:,.2f} / month"
    feature, current, suggested, confidence, _, rule_yaml = stored[0]
    assert f"**{feature}** · `{current}` → `{suggested}`" in app.markdown[0].value
    assert f"confidence **{confidence}**" in app.markdown[0].value

    app.button(key="rec_add_0").click().run()
    assert any("disabled: review it on the Rules page" in s.value for s in app.success)
    [expected] = yaml.safe_load(rule_yaml)
    added = next(r for r in load_rules_file(app.rules).rules if r.name == expected["name"])
    assert (added.enabled, added.org, added.model, added.target_model) == (False, "acme", current, suggested)

    app.checkbox(key="rec_enable_1").check()
    app.button(key="rec_add_1").click().run()
    assert any("enabled: the proxy applies it" in s.value for s in app.success)
    assert next(
        r for r in load_rules_file(app.rules).rules if r.name == yaml.safe_load(stored[1][5])[0]["name"]
    ).enabled


def test_anomalies_show_the_cost_spike_and_the_alert_state(app):
    app.switch_page("views/anomalies.py").run()
    no_errors(app)
    table = app.dataframe[0].value
    stored = sql(app.db, "SELECT metric, observed, severity FROM anomalies WHERE org_id = 'acme' AND status = 'open'")
    assert metric(app, "Open") == str(len(stored))
    spike = table[(table["metric"] == "cost_usd") & (table["scope"] == "whole org")].iloc[0]
    assert spike["observed"] > spike["expected"] and spike["severity"] in ("warning", "critical")
    assert set(table["alert"]) == {"not sent"}  # no mail server configured in the demo


def test_a_missing_an_empty_and_an_old_database_get_a_message_not_a_traceback(monkeypatch, tmp_path):
    rules = tmp_path / "rules.yaml"
    at = _app(monkeypatch, tmp_path / "nowhere.duckdb", rules)
    assert not at.exception and "No database at" in at.info[0].value

    duckdb.connect(str(tmp_path / "empty.duckdb")).close()
    at = _app(monkeypatch, tmp_path / "empty.duckdb", rules)
    assert not at.exception and "no Lectr tables yet" in at.info[0].value

    old = tmp_path / "old.duckdb"
    with duckdb.connect(str(old)) as con:
        con.execute("CREATE TABLE _migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMP)")
        for migration in storage.MIGRATIONS[:3]:
            migration(con)
            con.execute("INSERT INTO _migrations VALUES (?, now())", [migration.__name__])
    at = _app(monkeypatch, old, rules)
    assert not at.exception and "older Lectr version" in at.info[0].value
    at.switch_page("views/rules.py").run()  # the rules page needs only the rules file
    assert not at.exception and "No rules yet" in at.info[0].value


def test_a_database_locked_by_another_process_is_waited_out_with_a_notice(app):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); time.sleep(30)",
            str(app.db),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        app.switch_page("views/anomalies.py").run()
        assert not app.exception
        assert any("busy" in w.value for w in app.warning)
    finally:
        holder.kill()
        holder.wait()
    app.run()
    no_errors(app)
    assert app.title[0].value == "Anomalies · acme"


def test_a_rule_saved_in_the_dashboard_routes_the_running_proxys_next_request(simulator_process, tmp_path, monkeypatch):
    sim = simulator_process
    lectr = start_lectr(tmp_path / "proxy", sim.url)
    try:
        at = _app(monkeypatch, lectr.db_path, lectr.rules_path)
        at.switch_page("views/rules.py").run()
        at.text_input(key=form(at, "add", "name")).input("Dash to mini")
        at.text_input(key=form(at, "add", "feature")).input("dash")
        at.text_input(key=form(at, "add", "model")).input("gpt-4o")
        at.text_input(key=form(at, "add", "target_model")).input("gpt-4o-mini")
        before = lectr.log().count("rules loaded")
        at.button(key=form(at, "add", "submit")).click().run()
        no_errors(at)
        wait_until(lambda: lectr.log().count("rules loaded") > before, timeout=2, what="the proxy to reload")
        sim.clear()
        client = OpenAI(
            base_url=f"{lectr.url}/v1",
            api_key="sk-client",
            default_headers={"X-Lectr-Key": lectr.key, "X-Lectr-Feature": "dash"},
        )
        answer = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        assert answer.model == "gpt-4o-mini"
        assert [r["body"]["model"] for r in sim.received()] == ["gpt-4o-mini"]
    finally:
        stop(lectr.proc)
    assert re.search(r"rules loaded from .*rules.yaml: 1 rules", lectr.log())
