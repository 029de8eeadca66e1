"""The dashboard's pages, run with Streamlit's AppTest against a database filled through the real proxy.

`scripts/demo.py` sends mixed traffic through a real `mitmdump -s addons/lectr.py` to the
simulator, copies it back over two days of history and runs the background jobs; the
figures each page shows are checked against SQL on the same file.
"""

from __future__ import annotations

import json
import re
import sys
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import duckdb
import pandas as pd
import pytest
import streamlit as st
import yaml
from openai import OpenAI
from streamlit.proto.TextInput_pb2 import TextInput as TextInputProto
from streamlit.testing.v1 import AppTest

from lectr.admin import rulesfile, yamlfile
from lectr.common.experiments import parse_experiments
from lectr.common.rules import load_rules_file, parse_rules
from lectr.prices import pricing
from lectr.prices.pricefile import PriceList
from lectr.proxy import rulehealth
from lectr.store import open_store, utc_now
from lectr.store.migrations import MIGRATIONS

from helpers import ROOT, hold_database, query, start_lectr, stop, wait_until

sys.path.insert(0, str(ROOT / "dashboard"))
import common  # noqa: E402

APP = str(ROOT / "dashboard" / "app.py")


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


def since_24h() -> datetime:
    return (utc_now() - timedelta(hours=24)).replace(minute=0, second=0, microsecond=0)


def form(at: AppTest, name: str, field: str) -> str:
    """A rules-page form widget's key: it carries the rules' version (see dashboard/views/rules.py)."""
    return f"{name}_{rulesfile.read(yamlfile.source(str(at.rules), str(at.db), 'rules')).version[:8]}_{field}"


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def no_errors(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def table_with(at: AppTest, column: str) -> pd.DataFrame:
    """The page's data frame that has this column."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def test_overview_shows_the_orgs_figures_from_the_summaries(app):
    no_errors(app)
    assert app.selectbox(key="org").options == ["All orgs", "acme", "globex", "initech"]
    assert app.title[0].value == "Overview · all orgs"  # the first thing a user sees: everything
    app.selectbox(key="org").set_value("acme").run()
    no_errors(app)
    assert app.title[0].value == "Overview · acme"
    [(requests, routed, matched, errors, cost)] = query(
        app.db,
        "SELECT count(*), count(*) FILTER (WHERE routed), count(rule_id), count(error_category), sum(cost_usd) "
        "FROM request_logs "
        "WHERE org_id = 'acme' AND ts >= ?",
        [since_24h()],
    )
    assert metric(app, "Requests") == f"{requests:,}"
    assert metric(app, "Routing coverage") == f"{100 * routed / requests:.1f}%"
    assert metric(app, "Error rate") == f"{100 * errors / requests:.1f}%"
    assert metric(app, "Cost") == f"${cost:,.2f}"
    coverage = table_with(app, "rule").set_index("rule")
    assert (
        coverage.loc["Downgrade classifiers to mini", "requests"]
        == query(
            app.db,
            "SELECT count(*) FROM request_logs WHERE org_id = 'acme' AND ts >= ? "
            "AND rule_id = 'downgrade-classifiers-to-mini'",
            [since_24h()],
        )[0][0]
    )
    # A rule whose target is the request's own model matched, and changed nothing: not coverage.
    [(kept,)] = query(
        app.db,
        "SELECT count(*) FROM request_logs WHERE org_id = 'acme' AND ts >= ? AND rule_name = 'Keep reasoning on o3'",
        [since_24h()],
    )
    assert kept > 0 and coverage.loc["Keep reasoning on o3 (matched, changed nothing)", "requests"] == kept
    assert "Keep reasoning on o3" not in coverage.index
    assert coverage.loc["passed through (no rule)", "requests"] == requests - matched
    # six time series, cost by feature, cost by model
    assert len(app.get("vega_lite_chart")) == 8
    assert not app.warning  # the demo's proxy wrote a moment ago, and nothing was dropped


def test_overview_for_another_org_and_a_longer_period(app):
    app.selectbox(key="org").set_value("globex")
    app.selectbox(key="period").set_value("Last 7 days").run()
    no_errors(app)
    [(requests,)] = query(app.db, "SELECT count(*) FROM request_logs WHERE org_id = 'globex'")
    assert metric(app, "Requests") == f"{requests:,}"  # all of the demo's two days of history


def test_degradation_banners_for_dropped_events_and_a_silent_proxy(app, monkeypatch):
    with duckdb.connect(str(app.db)) as con:
        con.execute("INSERT INTO dropped_events VALUES (?, 'queue_full', 37)", [utc_now()])
        con.execute("UPDATE worker_runs SET last_run = last_run - INTERVAL 2 HOUR WHERE worker = 'writer'")
    st.cache_data.clear()  # what a user sees once the page's 5-second cache has expired
    app.run()
    assert any("37 events were dropped" in e.value for e in app.error)
    assert any("last write to this database was 2 h ago" in w.value for w in app.warning)


def test_a_host_whose_writer_went_quiet_is_named_while_the_others_write(app):
    with duckdb.connect(str(app.db)) as con:  # as PostgreSQL holds them for several hosts
        con.execute("INSERT INTO worker_runs VALUES ('writer host-b', ?)", [utc_now() - timedelta(minutes=12)])
        con.execute("INSERT INTO worker_runs VALUES ('writer host-gone', ?)", [utc_now() - timedelta(days=3)])
    st.cache_data.clear()
    app.run()
    quiet = [w.value for w in app.warning if "while other hosts write" in w.value]
    assert len(quiet) == 1 and "`host-b` last wrote 12 min ago" in quiet[0]  # not host-gone, three days away


def test_request_log_filters_and_pages_in_sql(app):
    app.selectbox(key="org").set_value("acme")
    app.switch_page("views/requests.py").run()
    no_errors(app)
    [(total,)] = query(app.db, "SELECT count(*) FROM request_logs WHERE org_id = 'acme' AND ts >= ?", [since_24h()])
    assert f"{total:,} requests match" in app.caption[0].value
    assert len(app.dataframe[0].value) == 50
    app.number_input(key="page").set_value(3).run()
    third = query(
        app.db,
        "SELECT request_id FROM request_logs WHERE org_id = 'acme' AND ts >= ? "
        "ORDER BY ts DESC, request_id LIMIT 50 OFFSET 100",
        [since_24h()],
    )
    assert list(app.dataframe[0].value["request_id"]) == [r for (r,) in third]
    app.number_input(key="page").set_value(1).run()

    app.selectbox(key="filter_task").set_value("classification")
    app.selectbox(key="filter_rule").set_value("Downgrade classifiers to mini").run()
    no_errors(app)
    rows = app.dataframe[0].value
    [(expected,)] = query(
        app.db,
        "SELECT count(*) FROM request_logs WHERE org_id = 'acme' AND ts >= ? AND "
        "task = 'classification' AND rule_name = 'Downgrade classifiers to mini'",
        [since_24h()],
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
    assert "(untagged)" not in app.selectbox(key="filter_feature").options  # acme tags every request
    app.selectbox(key="org").set_value("initech").run()
    app.selectbox(key="filter_feature").set_value("(none)").run()
    [(untagged,)] = query(
        app.db,
        "SELECT count(*) FROM request_logs WHERE org_id = 'initech' AND ts >= ? AND feature IS NULL",
        [since_24h()],
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
        query(
            app.db,
            "SELECT rule_id, count(*) FROM request_logs WHERE rule_id IS NOT NULL AND ts >= ? GROUP BY ALL",
            [since_24h()],
        )
    )
    assert counts  # the demo's traffic was routed
    assert dict(zip(table["name"], table["matched"])) == {r.name: counts.get(r.id, 0) for r in file_rules}


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


# --- the rules and experiments kept in the database (the Rules file setting: db) ------------------

STORED_RULES = (
    "# kept in the database, edited on the dashboard\n"
    "rules:\n  - {name: Classifiers to mini, priority: 1, match: {task: classification}, target: {model: gpt-4o-mini}}"
    "\n"
)
STORED_EXPERIMENTS = (
    "# kept in the database too\n"
    "experiments:\n  - {name: triage on mini, id: triage, match: {feature: triage}, candidate: {model: gpt-4o-mini}}\n"
)


def test_rules_kept_in_postgresql_are_edited_there_and_a_change_over_a_newer_save_is_refused(monkeypatch, pg_url):
    store = open_store(pg_url)
    store.save_document("rules", STORED_RULES, None)
    at = _app(monkeypatch, pg_url, "db")
    at.switch_page("views/rules.py").run()
    no_errors(at)
    assert at.caption[0].value.startswith(f"`the rules document in {store.display}`")
    assert list(table_with(at, "matched")["name"]) == ["Classifiers to mini"]

    at.text_input(key=form(at, "add", "name")).input("Search to flash")
    at.number_input(key=form(at, "add", "priority")).set_value(2)
    at.text_input(key=form(at, "add", "feature")).input("search")
    at.text_input(key=form(at, "add", "target_model")).input("gemini-2.5-flash")
    at.button(key=form(at, "add", "submit")).click().run()
    no_errors(at)
    assert any("Added 'Search to flash'" in s.value for s in at.success)
    text, version = store.document("rules")
    assert version == 2 and text.startswith("# kept in the database, edited on the dashboard\n")  # the comment stays
    assert [r.id for r in parse_rules(text).rules] == ["classifiers-to-mini", "search-to-flash"]

    # Someone else saves (another dashboard, an import) while this page shows version 2: its change is refused.
    newer = text.replace("gpt-4o-mini", "gpt-4.1-mini")
    assert store.save_document("rules", newer, 2) == 3
    at.selectbox(key="rule_selected").set_value("search-to-flash")
    at.button(key="rule_delete").click().run()
    assert [e.value for e in at.error] == [
        f"Not saved: the rules document in {store.display} was changed by someone else since it was loaded; "
        "reload the page and edit again"
    ]
    assert store.document("rules") == (newer, 3)
    # The page now shows version 3: the same change goes through.
    at.button(key="rule_delete").click().run()
    no_errors(at)
    assert [r.id for r in parse_rules(store.document("rules")[0]).rules] == ["classifiers-to-mini"]


def test_experiments_kept_in_the_database_are_stopped_there_and_a_stop_over_a_newer_save_is_refused(
    monkeypatch, tmp_path
):
    db = tmp_path / "lectr.duckdb"
    store = open_store(db)
    store.save_document("experiments", STORED_EXPERIMENTS, None)
    at = _app(monkeypatch, db, "db")  # the experiments follow the rules into the database
    at.switch_page("views/recommendations.py").run()
    no_errors(at)
    assert any(c.value.startswith(f"`the experiments document in {db}`") for c in at.caption)
    at.button(key="exp_toggle_triage").click().run()
    no_errors(at)
    assert any("Stopped 'triage on mini'" in s.value for s in at.success)
    text, version = store.document("experiments")
    assert version == 2 and text.startswith("# kept in the database too\n")
    assert [(e.id, e.enabled) for e in parse_experiments(text).experiments] == [("triage", False)]

    newer = text.replace("gpt-4o-mini", "gpt-4.1-mini")
    store.save_document("experiments", newer, 2)
    at.button(key="exp_toggle_triage").click().run()  # Resume, on a page drawn before that save
    assert [e.value for e in at.error] == [
        f"Not saved: the experiments document in {db} was changed by someone else since it was loaded; "
        "reload the page and edit again"
    ]
    assert store.document("experiments") == (newer, 3)


def test_recommendations_show_evidence_and_become_disabled_or_enabled_rules(app):
    app.selectbox(key="org").set_value("acme")
    app.switch_page("views/recommendations.py").run()
    no_errors(app)
    stored = query(
        app.db,
        "SELECT feature, current_model, suggested_model, confidence, monthly_saving_usd, rule_yaml, provider "
        "FROM recommendations WHERE org_id = 'acme' ORDER BY CASE confidence WHEN 'high' THEN 0 "
        "WHEN 'medium' THEN 1 ELSE 2 END, monthly_saving_usd DESC",
    )
    assert stored
    assert all(model != "o3" for _, model, *_ in stored)  # research is reasoning: never downgraded
    for level in ("high", "medium", "low"):  # a saving per confidence level, never added across them
        same = [row[4] for row in stored if row[3] == level]
        label = f"{level.capitalize()} confidence · {len(same)} recommendation{'' if len(same) == 1 else 's'}"
        assert metric(app, label) == f"${sum(same):,.2f} / month"
    feature, current, suggested, confidence, _, rule_yaml, _ = stored[0]
    # A card's widgets are keyed on its traffic (org, feature, provider, model), never on its place.
    first, second = ("|".join(quote(p, safe="") for p in ("acme", r[0], r[6], r[1])) for r in stored[:2])
    head = next(m.value for m in app.markdown if "· confidence **" in m.value)
    assert f"**{feature}** · `{current}` → `{suggested}`" in head
    assert f"confidence **{confidence}**" in head

    app.button(key=f"rec_add_{first}").click().run()
    assert any("disabled: review it on the Rules page" in s.value for s in app.success)
    [expected] = yaml.safe_load(rule_yaml)
    added = next(r for r in load_rules_file(app.rules).rules if r.name == expected["name"])
    assert (added.enabled, added.org, added.model, added.target_model) == (False, "acme", current, suggested)

    app.checkbox(key=f"rec_enable_{second}").check()
    app.button(key=f"rec_add_{second}").click().run()
    assert any("enabled: the proxy applies it" in s.value for s in app.success)
    assert next(
        r for r in load_rules_file(app.rules).rules if r.name == yaml.safe_load(stored[1][5])[0]["name"]
    ).enabled


def test_anomalies_show_the_cost_spike_and_the_alert_state(app):
    app.selectbox(key="org").set_value("acme")
    app.switch_page("views/anomalies.py").run()
    no_errors(app)
    table = app.dataframe[0].value
    stored = query(app.db, "SELECT metric, observed, severity FROM anomalies WHERE org_id = 'acme' AND status = 'open'")
    assert metric(app, "Open") == str(len(stored))
    [(observed, expected)] = query(
        app.db,
        "SELECT observed, expected FROM anomalies WHERE org_id = 'acme' AND feature IS NULL AND metric = 'cost_usd'",
    )
    spike = table[(table["metric"] == "cost") & (table["scope"] == "whole org")].iloc[0]
    assert observed > expected and spike["severity"] in ("warning", "critical")
    assert (spike["observed"], spike["expected"]) == (common.usd(observed), common.usd(expected))  # $2.04, $0.21
    # No mail server configured in the demo, and the page says so.
    assert set(table["alert"]) == {"not sent: no mail server set up"}


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
        for migration in MIGRATIONS[:3]:
            migration(con)
            con.execute("INSERT INTO _migrations VALUES (?, now())", [migration.__name__])
    at = _app(monkeypatch, old, rules)
    assert not at.exception and "older Lectr version" in at.info[0].value
    at.switch_page("views/rules.py").run()  # the rules page needs only the rules file
    assert not at.exception and "No rules yet" in at.info[0].value

    at = _app(monkeypatch, "mysql://lectr@127.0.0.1/lectr", rules)  # neither a file nor PostgreSQL: said
    assert not at.exception and "give its path" in at.error[0].value and not at.warning


@pytest.mark.slow  # waits out the connection pool's timeout (5 s) twice
def test_a_postgresql_that_does_not_answer_is_said_with_its_password_hidden(monkeypatch, tmp_path):
    at = _app(monkeypatch, "postgresql://lectr:s3cret@127.0.0.1:1/lectr", tmp_path / "rules.yaml")  # port 1: no one
    shown = at.warning[0].value
    assert not at.exception and "PostgreSQL does not answer" in shown and "s3cret" not in shown and "***" in shown
    assert at.text_input(key="db").proto.type == TextInputProto.PASSWORD  # the sidebar masks a URL with a password


def test_a_database_locked_by_another_process_is_waited_out_with_a_notice(app):
    holder = hold_database(app.db, 30)
    try:
        app.switch_page("views/anomalies.py").run()
        assert not app.exception
        assert any("busy" in w.value for w in app.warning)
    finally:
        holder.kill()
        holder.wait()
    app.run()
    no_errors(app)
    assert app.title[0].value == "Anomalies · all orgs"


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
    assert re.search(r"rules loaded from .*rules.yaml: 1 rule, 1 enabled", lectr.log())


# --- rule health, fallbacks and endpoints, on rows written here ------------------------------

HEALTH_RULES = """
rules:
  - {name: Cheap nano, priority: 1, match: {feature: search}, target: {model: gpt-5-nano}}
  - {name: Flaky mini, priority: 2, match: {feature: chat}, target: {model: gpt-4o-mini}}
  - {name: Healthy, priority: 3, match: {feature: docs}, target: {model: gpt-4.1-mini}}
  - {name: Digest on Groq, priority: 4, match: {feature: digest}, target: {provider: groq, model: llama-3.1-8b-instant}}
  - {name: Typo, priority: 5, match: {feature: typo}, target: {model: gpt-4o-mnii}}
"""
NOT_FOUND = "404 model_not_found: The model `gpt-5-nano` does not exist or you do not have access to it."
SUSPENDED = f"{rulehealth.SUSPENDED}rule 'cheap-nano' failed 3 times in a row (last: {NOT_FOUND}); requests pass ..."
NO_KEY = "rule 'digest-on-groq' targets groq, but Lectr has no groq key configured for org 'acme'"
LOG_COLUMNS = (
    "ts request_id org_id endpoint provider model_requested model_actual rule_id rule_name route_skip_reason "
    "skipped_rule_id fallback_model fallback_status fallback_error fallback_ms feature task streaming status_code "
    "error_category latency_ms ttfb_ms prompt_tokens completion_tokens reasoning_tokens cost_usd price_source routed"
).split()


def log_row(minutes_ago: float, **fields) -> dict:
    """A request_logs row as the proxy writes one: an answered gpt-4o chat completion, unless told otherwise."""
    row = dict.fromkeys(LOG_COLUMNS)
    row.update(
        ts=utc_now() - timedelta(minutes=minutes_ago),
        request_id=f"r{minutes_ago:g}-{fields.get('feature')}-{fields.get('endpoint', '')}",
        org_id="acme",
        endpoint="/chat/completions",
        provider="openai",
        model_requested="gpt-4o",
        model_actual="gpt-4o",
        streaming=False,
        status_code=200,
        latency_ms=900.0,
        ttfb_ms=300.0,
        prompt_tokens=120,
        completion_tokens=40,
        cost_usd=0.0007,
        price_source="bundled",
    )
    return row | fields


def applied(minutes_ago: float, rule: str, name: str, model: str, **fields) -> dict:
    return log_row(minutes_ago, rule_id=rule, rule_name=name, model_actual=model, routed=model != "gpt-4o", **fields)


def fell_back(minutes_ago: float, rule: str, target: str, status: int | None, error: str, **fields) -> dict:
    fields = dict(fallback_model=target, fallback_status=status, fallback_error=error, fallback_ms=850.0) | fields
    return log_row(minutes_ago, skipped_rule_id=rule, **fields)


def skipped(minutes_ago: float, rule: str, reason: str, **fields) -> dict:
    return log_row(minutes_ago, skipped_rule_id=rule, route_skip_reason=reason, **fields)


@pytest.fixture
def health_app(monkeypatch, tmp_path):
    """Five rules, each with a different recent history in the request log."""
    db, rules = tmp_path / "lectr.duckdb", tmp_path / "rules.yaml"
    rules.write_text(HEALTH_RULES)
    nano = dict(feature="search")
    open_store(db).append_request_logs(
        [
            # Cheap nano: its target does not exist; three fallbacks, then suspended.
            fell_back(10, "cheap-nano", "gpt-5-nano", 404, NOT_FOUND, **nano),
            fell_back(8, "cheap-nano", "gpt-5-nano", 404, NOT_FOUND, **nano),
            fell_back(6, "cheap-nano", "gpt-5-nano", 404, NOT_FOUND, **nano),
            skipped(5, "cheap-nano", SUSPENDED, **nano),
            skipped(2, "cheap-nano", SUSPENDED, **nano, endpoint="/responses", reasoning_tokens=64),
            # Flaky mini: routed fine until its latest request found no answer in time.
            applied(30, "flaky-mini", "Flaky mini", "gpt-4o-mini", feature="chat"),
            fell_back(1, "flaky-mini", "gpt-4o-mini", None, "no response headers within 10000 ms", feature="chat"),
            # Healthy: a fallback yesterday and one two hours ago, routed since.
            fell_back(30 * 60, "healthy", "gpt-4.1-mini", 429, "429 rate_limit_exceeded: slow down", feature="docs"),
            fell_back(120, "healthy", "gpt-4.1-mini", 503, "503 overloaded", feature="docs"),
            applied(3, "healthy", "Healthy", "gpt-4.1-mini", feature="docs", reasoning_tokens=12),
            # Digest on Groq: skipped for want of a key, which is not ill health.
            applied(50, "digest-on-groq", "Digest on Groq", "llama-3.1-8b-instant", feature="digest", provider="groq"),
            skipped(4, "digest-on-groq", NO_KEY, feature="digest"),
            # Typo: no requests. Traffic no rule matched, on other endpoints:
            log_row(7, feature="embed", endpoint="/embeddings", model_requested="text-embedding-3-small"),
            log_row(9, feature="agent", endpoint="/responses", model_requested="o4-mini", reasoning_tokens=256),
            log_row(11, feature="agent", endpoint=None, status_code=502, error_category="upstream_5xx"),
        ],
    )
    open_store(db).aggregate()
    return _app(monkeypatch, db, rules)


def test_rule_health_reads_each_rules_latest_row_and_its_fallbacks(health_app):
    now = utc_now()
    health = open_store(health_app.db).rule_health(now - timedelta(days=7), now - timedelta(hours=24))
    by_rule = health.set_index("rule_id")
    assert dict(by_rule["state"]) == {
        "cheap-nano": "suspended",
        "digest-on-groq": "ok",
        "flaky-mini": "failing",
        "healthy": "ok",
    }
    assert dict(by_rule["fallbacks"]) == {"cheap-nano": 3, "digest-on-groq": 0, "flaky-mini": 1, "healthy": 1}
    assert dict(by_rule["skipped"]) == {"cheap-nano": 2, "digest-on-groq": 1, "flaky-mini": 0, "healthy": 0}
    assert by_rule.loc["healthy", "last_fallback_error"] == "503 overloaded"
    assert by_rule.loc["cheap-nano", "last_fallback_status"] == 404
    assert by_rule.loc["flaky-mini", "last_fallback_model"] == "gpt-4o-mini"
    assert pd.isna(by_rule.loc["flaky-mini", "last_fallback_status"])  # no response at all
    assert by_rule.loc["digest-on-groq", "last_skip_reason"] == NO_KEY
    # Only the rows since `since`: a rule whose last request is older has no health yet.
    recent = open_store(health_app.db).rule_health(now - timedelta(minutes=7), now - timedelta(hours=24))
    assert dict(recent.set_index("rule_id")["state"]) == {
        "cheap-nano": "suspended",
        "digest-on-groq": "ok",
        "flaky-mini": "failing",
        "healthy": "ok",
    }
    assert dict(recent.set_index("rule_id")["fallbacks"]) == {
        "cheap-nano": 1,
        "digest-on-groq": 0,
        "flaky-mini": 1,
        "healthy": 0,
    }


def test_rules_page_shows_each_rules_health_and_warns_of_suspended_rules(health_app):
    health_app.switch_page("views/rules.py").run()
    assert not health_app.exception, [e.message for e in health_app.exception]
    assert not health_app.error, [e.value for e in health_app.error]
    table = health_app.dataframe[0].value.set_index("name")
    assert dict(table["health"]) == {
        "Cheap nano": "⊘ suspended",
        "Flaky mini": "⚠ failing",
        "Healthy": "✓ ok",
        "Digest on Groq": "✓ ok",
        "Typo": "—",
    }
    assert dict(table["fallbacks"]) == {
        "Cheap nano": 3,
        "Flaky mini": 1,
        "Healthy": 1,
        "Digest on Groq": 0,
        "Typo": 0,
    }
    # Below the table, a line for each rule with fallbacks or skips: the last fallback's error, and when.
    [listed] = [m.value for m in health_app.markdown if m.value.startswith("- ")]
    lines = {line.split("**")[1]: line for line in listed.splitlines()}
    assert list(lines) == ["Cheap nano", "Flaky mini", "Healthy", "Digest on Groq"]  # Typo has no requests
    assert lines["Cheap nano"].endswith(f"last fallback 6 min ago: `gpt-5-nano` → {NOT_FOUND}")
    assert "3 fallbacks, 2 skips in 24 h" in lines["Cheap nano"]
    assert lines["Flaky mini"].endswith("`gpt-4o-mini` → no response headers within 10000 ms")
    assert (
        lines["Digest on Groq"].endswith(f"last skipped: {NO_KEY}")
        and "0 fallbacks, 1 skips" in lines["Digest on Groq"]
    )
    assert "last skipped" not in lines["Cheap nano"]  # its skips are the suspension, said once

    suspended = [w.value for w in health_app.warning if "is suspended" in w.value]
    assert len(suspended) == 1 and "**Cheap nano**" in suspended[0] and NOT_FOUND in suspended[0]


def test_rules_page_warns_of_a_target_model_no_price_source_knows(health_app):
    health_app.switch_page("views/rules.py").run()
    unknown = [w.value for w in health_app.warning if "unknown model: check the spelling" in w.value]
    assert unknown == [unknown[0]] and "**Typo**" in unknown[0] and "`gpt-4o-mnii`" in unknown[0]
    targets = health_app.dataframe[0].value.set_index("name")["target"]
    assert targets["Typo"] == "⚠ gpt-4o-mnii"
    assert [name for name, target in targets.items() if "⚠" in target] == ["Typo"]

    # Corrected in the form: the warning goes.
    health_app.selectbox(key="rule_selected").set_value("typo").run()
    health_app.text_input(key=form(health_app, "edit_typo", "target_model")).input("gpt-4o-mini")
    health_app.button(key=form(health_app, "edit_typo", "submit")).click().run()
    no_errors(health_app)
    assert not [w.value for w in health_app.warning if "unknown model" in w.value]
    assert health_app.dataframe[0].value.set_index("name")["target"]["Typo"] == "gpt-4o-mini"


def test_a_target_model_priced_in_the_users_price_file_is_not_unknown(health_app, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # the dashboard reads prices.yaml where it runs, as the proxy does
    (tmp_path / "prices.yaml").write_text("prices:\n  - {provider: openai, model: gpt-4o-mnii, input: 1, output: 2}\n")
    try:
        health_app.switch_page("views/rules.py").run()
        no_errors(health_app)
        assert not [w.value for w in health_app.warning if "unknown model" in w.value]
    finally:
        pricing.use(None, PriceList())  # the page set this process's prices: the next test starts afresh


def test_request_log_filters_by_endpoint_and_shows_fallbacks_and_skips(health_app):
    health_app.switch_page("views/requests.py").run()
    no_errors(health_app)
    [(total,)] = query(health_app.db, "SELECT count(*) FROM request_logs WHERE ts >= ?", [since_24h()])
    assert total >= 14 and f"{total} requests match" in health_app.caption[0].value  # not the 30-hour-old row
    endpoint = health_app.selectbox(key="filter_endpoint")
    assert endpoint.options == ["All", "/chat/completions", "/embeddings", "/responses", "(none)"]

    endpoint.set_value("/responses").run()
    rows = health_app.dataframe[0].value
    assert "2 requests match" in health_app.caption[0].value
    assert set(rows["endpoint"]) == {"/responses"}
    assert sorted(rows["reasoning_tokens"]) == [64, 256]

    health_app.selectbox(key="filter_endpoint").set_value("(none)").run()
    assert "1 request matches" in health_app.caption[0].value
    assert list(health_app.dataframe[0].value["error_category"]) == ["upstream_5xx"]

    health_app.selectbox(key="filter_endpoint").set_value("All")
    health_app.selectbox(key="filter_feature").set_value("search").run()
    rows = health_app.dataframe[0].value.set_index("request_id")
    assert list(rows["route"]) == ["⊘", "⊘", "↩", "↩", "↩"]  # newest first: suspended, then the fallbacks
    assert rows.loc["r6-search-", "fallback"] == "gpt-5-nano: 404 · 850 ms"
    assert rows.loc["r6-search-", "not_routed"] == NOT_FOUND
    assert rows.loc["r6-search-", "rule"] == "cheap-nano (not applied)"
    assert rows.loc["r5-search-", "not_routed"].startswith(rulehealth.SUSPENDED)
    assert pd.isna(rows.loc["r5-search-", "fallback"])

    health_app.selectbox(key="filter_feature").set_value("chat").run()
    rows = health_app.dataframe[0].value.set_index("request_id")
    assert rows.loc["r1-chat-", "fallback"] == "gpt-4o-mini: no response · 850 ms"
    assert (rows.loc["r30-chat-", "route"], rows.loc["r30-chat-", "rule"]) == ("⇄", "Flaky mini")


# --- one window, every page; all orgs; a request's detail (issue 15) ---------------------------


def window_start(days: int) -> datetime:
    """The sidebar's window, as every page counts it: from the whole hour `days` before."""
    return (utc_now() - timedelta(days=days)).replace(minute=0, second=0, microsecond=0)


def requests_on_both_pages(at: AppTest) -> tuple[str, str]:
    """The Overview's request count, and the count in the Requests page's caption."""
    at.switch_page("views/overview.py").run()
    no_errors(at)
    overview = metric(at, "Requests")
    at.switch_page("views/requests.py").run()
    no_errors(at)
    log = re.match(r"([\d,]+) requests? match", at.caption[0].value).group(1)
    return overview, log


def test_every_page_counts_the_same_window_before_and_after_the_aggregator_runs(app):
    # Requests written since the last aggregation (it runs once a minute), and refused ones.
    late = [log_row(0.5 + i / 10, feature="late") for i in range(5)]
    refused = [
        log_row(1 + i / 10, org_id=None, status_code=401, error_category="auth", model_actual=None, cost_usd=None)
        for i in range(3)
    ]  # and one that ended before its key was checked (its client was too slow): no org, but no failed auth
    too_slow = log_row(1.5, org_id=None, status_code=408, error_category="client", model_actual=None, cost_usd=None)
    open_store(app.db).append_request_logs(late + refused + [too_slow])
    st.cache_data.clear()
    for org, period, days in (("acme", "Last 24 hours", 1), ("acme", "Last 7 days", 7), ("All orgs", "Last 7 days", 7)):
        app.selectbox(key="org").set_value(org)
        app.selectbox(key="period").set_value(period)
        scope = "TRUE" if org == "All orgs" else "org_id = 'acme'"
        [(expected,)] = query(
            app.db, f"SELECT count(*) FROM request_logs WHERE {scope} AND ts >= ?", [window_start(days)]
        )
        assert requests_on_both_pages(app) == (f"{expected:,}", f"{expected:,}"), (org, period)

    [(no_org, refused)] = query(
        app.db,
        "SELECT count(*), count(*) FILTER (WHERE status_code IN (401, 429)) FROM request_logs "
        "WHERE org_id IS NULL AND ts >= ?",
        [window_start(7)],
    )
    assert refused >= 3 and no_org == refused + 1  # the demo's own wrong keys and these; the slow client
    app.switch_page("views/overview.py").run()
    by_org = table_with(app, "org").set_index("org")
    assert by_org.loc["(no org)", "requests"] == no_org
    assert metric(app, "Failed auth") == f"{refused:,}"
    app.switch_page("views/requests.py").run()
    app.selectbox(key="filter_outcome").set_value("auth").run()
    rows = app.dataframe[0].value
    assert set(rows["org"]) == {"(no org)"} and set(rows["status"]) <= {"401 auth", "429 auth"}


def test_a_rule_whose_target_is_the_request_as_sent_is_stored_unrouted(demo):
    # The demo's traffic went through the real proxy: the rule keeping o3 on o3 matched, and changed nothing.
    db, _ = demo
    by_rule = dict(query(db, "SELECT rule_id, bool_and(routed) FROM request_logs WHERE rule_id IS NOT NULL GROUP BY 1"))
    assert by_rule["keep-reasoning-on-o3"] is False
    assert by_rule["downgrade-classifiers-to-mini"] is True
    assert query(db, "SELECT count(*) FROM request_logs WHERE rule_id IS NULL AND routed")[0][0] == 0


def test_a_week_on_the_time_axis_is_labelled_by_date(app):
    def x_axis_formats() -> set[str]:
        specs = [json.loads(chart.proto.spec) for chart in app.get("vega_lite_chart")]
        return {
            spec["encoding"]["x"]["axis"]["format"] for spec in specs if spec["encoding"]["x"]["type"] == "temporal"
        }

    assert x_axis_formats() == {"%H:%M"}  # a day: hours
    app.selectbox(key="period").set_value("Last 7 days").run()
    assert x_axis_formats() == {"%b %d"}  # a week: dates, not "12 PM" at every tick


def test_a_request_opens_into_every_stored_column(health_app):
    health_app.selectbox(key="org").set_value("acme")
    health_app.switch_page("views/requests.py").run()
    health_app.text_input(key="request_id").set_value("r6-search-").run()
    no_errors(health_app)
    shown = pd.concat([t.value for t in health_app.table])["value"]
    [columns] = query(
        health_app.db, "SELECT list(column_name) FROM information_schema.columns WHERE table_name = 'request_logs'"
    )
    assert len(shown) == len(columns[0])  # every stored column, once
    assert shown["fallback: the target that failed"] == "gpt-5-nano"
    assert shown["fallback: its status"] == "404"
    assert shown["fallback: its error"] == NOT_FOUND
    assert shown["rule matched, not applied"] == "cheap-nano"
    assert shown["price from"] == "bundled" and shown["cost"] == "$0.0007"
    assert shown["tokens counted by"] == "–"  # NULL: a dash, never "None"
    assert health_app.subheader[0].value == "Request r6-search-"

    health_app.text_input(key="request_id").set_value("no-such-request").run()
    assert any("No request with id `no-such-request`" in w.value for w in health_app.warning)
    open_store(health_app.db).append_request_logs([log_row(2, org_id="globex", feature="other")])
    open_store(health_app.db).aggregate()
    st.cache_data.clear()
    health_app.run()
    health_app.selectbox(key="org").set_value("globex").run()
    health_app.text_input(key="request_id").set_value("r6-search-").run()
    assert any("is not globex's" in w.value for w in health_app.warning) and not health_app.table


def test_money_and_widths_read_whole():
    values = (0, 1234.5, 0.56, 0.0999, 0.0123, 0.0007, 0.000042, 0.00000012, None)
    assert [common.usd(v) for v in values] == [
        "$0.00", "$1,234.50", "$0.56", "$0.10", "$0.012", "$0.0007", "$0.000042", "$0.00000012", "–",
    ]  # fmt: skip
    # Chromium measures this 424.3 px in the grid's font, and the grid pads 8 px a side.
    when = "feature=support-bot, task=classification, provider=openai, model=gpt-4o"
    assert 424.3 + 16 <= common.fit([when]) <= 424.3 + 16 + 12  # whole, and not much wider
    assert common.fit(["gpt-4o", "llama-3.3-70b-versatile"], "model") > common.fit(["gpt-4o"], "model")
    assert common.fit([], "tokens in / out") == common.fit(["ok"], "tokens in / out")  # the header counts


def test_the_request_log_is_a_snapshot_until_refreshed(app):
    # Rows that arrive while a reader looks at the log must not move under their selection.
    app.selectbox(key="org").set_value("acme")
    app.switch_page("views/requests.py").run()
    first = app.dataframe[0].value["request_id"].tolist()
    caption = app.caption[0].value
    open_store(app.db).append_request_logs([log_row(0, feature="newer", request_id=f"newer-{i}") for i in range(3)])
    st.cache_data.clear()
    app.run()  # a widget's rerun, e.g. a row selected
    assert app.dataframe[0].value["request_id"].tolist() == first and app.caption[0].value == caption
    next(b for b in app.button if b.label == "Refresh").click().run()
    no_errors(app)
    assert set(app.dataframe[0].value["request_id"][:3]) == {"newer-0", "newer-1", "newer-2"}
    open_store(app.db).append_request_logs([log_row(0, feature="newest", request_id="newest")])
    st.cache_data.clear()
    app.switch_page("views/overview.py").run()
    app.switch_page("views/requests.py").run()  # opened afresh: a new snapshot too
    assert app.dataframe[0].value["request_id"].iloc[0] == "newest"
