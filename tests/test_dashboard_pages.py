"""The Anomalies and Recommendations pages read as a new user needs: values in their units,
why no alert went out, evidence as a table, savings per confidence level, and rules for the
recommendation's own org.

They run with Streamlit's AppTest on a copy of the demo database (tests/test_dashboard.py's
fixtures: demo traffic through the real proxy); each figure is checked against SQL on it.
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta

import duckdb
import pytest
import test_dashboard
import yaml
from test_dashboard import metric, no_errors

from lectr.common.rules import load_rules_file
from lectr.jobs import alerts, runs
from lectr.store import open_store, utc_now

from helpers import ROOT, query

sys.path.insert(0, str(ROOT / "dashboard"))
import common  # noqa: E402

app = test_dashboard.app  # the app on a copy of the demo database (conftest's `demo`)

UNCONFIGURED = "not sent: no mail server set up"


def show(at, page: str, org: str = common.ALL_ORGS, period: str | None = None):
    at.selectbox(key="org").set_value(org)
    if period:
        at.selectbox(key="period").set_value(period)
    at.switch_page(f"views/{page}.py").run()
    no_errors(at)
    return at


def stored_anomaly(org: str, feature: str | None, metric: str, observed: float, expected: float, **fields) -> dict:
    now = utc_now()
    row = {
        "anomaly_id": f"{org}|{feature or ''}|{metric}|test",
        "org_id": org,
        "feature": feature,
        "metric": metric,
        "window_start": now - timedelta(hours=1),
        "window_end": now,
        "observed": observed,
        "expected": expected,
        "score": 9.0,
        "severity": "critical",
        "status": "open",
        "first_seen": now,
        "last_seen": now,
        "resolved_at": None,
        "notified_at": None,
        "notify_error": None,
    }
    return {**row, **fields}


@pytest.fixture
def more_anomalies(app):
    """The demo's (acme's cost spike, alert not configured) and one of each other kind: an error
    rate whose mail failed, a latency one from before reasons were stored, one mailed, one too old."""
    now = utc_now()
    resolved = {"status": "resolved", "resolved_at": now}
    rows = [
        stored_anomaly("globex", None, "error_rate", 0.125, 0.02, notify_error="SMTPConnectError: refused"),
        stored_anomaly(
            "globex", "chat", "latency_p95_ms", 2345.6, 812.0, last_seen=now - timedelta(hours=2), **resolved
        ),
        stored_anomaly("initech", "search", "requests", 1674000, 1200, notified_at=now - timedelta(minutes=3)),
        stored_anomaly("initech", None, "tokens", 9000, 500, last_seen=now - timedelta(days=3), **resolved),
    ]
    open_store(app.db).save_anomalies(rows, [], now)
    return app


def test_anomaly_values_read_in_their_own_units_with_the_org(more_anomalies):
    at = show(more_anomalies, "anomalies")
    table = at.dataframe[0].value
    stored = query(
        at.db,
        "SELECT org_id, coalesce(feature, 'whole org'), metric, observed, expected FROM anomalies "
        "WHERE status = 'open' OR last_seen >= ?",
        [utc_now() - timedelta(hours=24)],
    )
    assert len(table) == len(stored)  # the three-day-old one is outside the sidebar's 24 hours
    shown = {(r.org, r.scope, r.metric): (r.observed, r.expected) for r in table.itertuples()}
    words = {
        "cost_usd": "cost",
        "tokens": "tokens",
        "requests": "requests",
        "error_rate": "error rate",
        "latency_p95_ms": "p95 latency",
    }
    units = {
        "cost_usd": common.usd,
        "tokens": lambda v: f"{v:,.0f}",
        "requests": lambda v: f"{v:,.0f}",
        "error_rate": lambda v: f"{100 * v:.1f}%",
        "latency_p95_ms": lambda v: f"{v:,.0f} ms",
    }
    for org, scope, name, observed, expected in stored:
        assert shown[(org, scope, words[name])] == (units[name](observed), units[name](expected))
    # The strings a reader sees, spelled out:
    assert shown[("globex", "whole org", "error rate")] == ("12.5%", "2.0%")
    assert shown[("globex", "chat", "p95 latency")] == ("2,346 ms", "812 ms")
    assert shown[("initech", "search", "requests")] == ("1,674,000", "1,200")
    spike = shown[("acme", "whole org", "cost")]
    assert spike[0].startswith("$") and spike[1].startswith("$")
    tokens = shown[("acme", "whole org", "tokens")]
    assert "," in tokens[0]  # the demo's spike is hundreds of thousands of tokens

    longer = show(more_anomalies, "anomalies", period="Last 7 days")
    assert ("initech", "whole org", "tokens") in {
        (r.org, r.scope, r.metric) for r in longer.dataframe[0].value.itertuples()
    }


def test_anomalies_of_one_org_have_no_org_column(more_anomalies):
    at = show(more_anomalies, "anomalies", org="globex")
    table = at.dataframe[0].value
    assert "org" not in table.columns
    assert set(table["metric"]) == {"error rate", "p95 latency"}
    assert at.title[0].value == "Anomalies · globex"


def test_each_alert_says_why_it_was_not_sent(more_anomalies):
    [(reason,)] = query(more_anomalies.db, "SELECT DISTINCT notify_error FROM anomalies WHERE org_id = 'acme'")
    assert reason == alerts.not_configured(alerts.SmtpSettings())  # the demo runs with no mail server
    assert alerts.is_not_configured(reason) and "LECTR_SMTP_HOST and LECTR_SMTP_TO" in reason

    at = show(more_anomalies, "anomalies")
    alert = {(r.org, r.scope, r.metric): r.alert for r in at.dataframe[0].value.itertuples()}
    assert alert[("acme", "whole org", "cost")] == UNCONFIGURED
    assert alert[("globex", "whole org", "error rate")] == "failed: SMTPConnectError: refused"
    assert alert[("globex", "chat", "p95 latency")] == "not sent"
    assert alert[("initech", "search", "requests")].startswith("sent ")
    captions = " ".join(c.value for c in at.caption)
    assert "To email alerts, set LECTR_SMTP_HOST and LECTR_SMTP_TO" in captions
    assert "“not sent” without a reason: recorded by an older Lectr" in captions


def test_a_missing_recipient_is_the_reason_and_no_failure(app):
    """The next check with a server but no recipients: still not configured, so the run reports no mail
    error (`lectr anomalies` exits 0) and the page names the one setting missing."""
    [(last_check,)] = query(app.db, "SELECT max(last_seen) FROM anomalies")
    run = runs.run_anomalies(app.db, alerts.SmtpSettings(host="smtp.example.com"), last_check)
    assert run.ongoing and not run.mailed and run.mail_error is None
    assert query(app.db, "SELECT DISTINCT notify_error FROM anomalies") == [
        ("not configured: set LECTR_SMTP_TO (the proxy's lectr_smtp_to) to email alerts",)
    ]
    at = show(app, "anomalies")
    assert set(at.dataframe[0].value["alert"]) == {"not sent: no recipients set up"}


RANKED = (
    "SELECT org_id, feature, current_model, confidence, monthly_saving_usd, evidence, rule_yaml FROM recommendations "
    "ORDER BY CASE confidence WHEN 'high' THEN 0 WHEN 'medium' THEN 1 ELSE 2 END, monthly_saving_usd DESC"
)


def test_savings_are_shown_per_confidence_level_never_added_across(app):
    at = show(app, "recommendations")
    sums = dict(
        (level, (n, total))
        for level, n, total in query(
            at.db, "SELECT confidence, count(*), sum(monthly_saving_usd) FROM recommendations GROUP BY confidence"
        )
    )
    assert len(sums) >= 2  # the demo has high, medium and low ones
    # recommend.py emits one per org, feature, provider and model: the sums add different traffic.
    same_traffic = "GROUP BY org_id, feature, provider, current_model HAVING count(*) > 1"
    assert query(at.db, f"SELECT count(*) FROM recommendations {same_traffic}") == []
    for level in ("high", "medium", "low"):
        n, total = sums.get(level, (0, 0.0))
        label = f"{level.capitalize()} confidence · {n} recommendation{'' if n == 1 else 's'}"
        assert metric(at, label) == f"{common.usd(total)} / month"
    assert not any(m.label.startswith("Estimated saving") for m in at.metric)


def test_the_evidence_is_a_table_with_words_and_units_and_a_cost_chart(app):
    at = show(app, "recommendations")
    ranked = query(at.db, RANKED)
    evidence = json.loads(ranked[0][5])
    table = dict(at.table[0].value.itertuples(index=False))
    requests = evidence["requests"]
    assert table["requests observed"] == f"{requests:,}"
    assert table["prompt tokens, average"] == f"{round(evidence['avg_prompt_tokens']):,}"
    assert table["answer tokens, 95th percentile"] == f"{round(evidence['p95_completion_tokens']):,}"
    assert table["cost observed"] == common.usd(evidence["cost_usd"])
    [(task, n)] = evidence["task_mix"].items()  # the demo's features each have one task
    assert table["task mix (X-Lectr-Task)"] == f"{task} {100 * n / requests:.0f}%"
    assert len(at.table) == len(ranked)
    assert len(at.get("vega_lite_chart")) == len(ranked)  # now against suggested, per recommendation
    assert [c.value.strip() for c in at.code] == [row[6].strip() for row in ranked]  # the rule YAML, as before


def test_all_orgs_names_each_recommendations_org_and_adds_its_rule_for_that_org(app):
    at = show(app, "recommendations")
    ranked = query(at.db, RANKED)
    i, (org, feature, current, *_, rule_yaml) = next((i, r) for i, r in enumerate(ranked) if r[0] != "acme")
    heads = [m.value for m in at.markdown if "· confidence **" in m.value]  # one per recommendation
    assert len(heads) == len(ranked)
    assert heads[i].startswith(f"org **{org}** · **{feature}** · `{current}`")
    # A YAML without the org (as an older Lectr stored it) still becomes a rule for that org only.
    with_org = f"  org: {org}\n"
    assert with_org in rule_yaml
    with duckdb.connect(str(at.db)) as con:
        con.execute("UPDATE recommendations SET rule_yaml = replace(rule_yaml, ?, '')", [with_org])
    common.clear_cache()
    at.run()
    assert at.button(key=f"rec_add_{i}").label == f"Add as rule for {org}"
    at.checkbox(key=f"rec_enable_{i}").check()
    at.button(key=f"rec_add_{i}").click().run()
    no_errors(at)
    assert any(f"for {org} at priority" in s.value for s in at.success)
    [expected] = yaml.safe_load(rule_yaml)
    rule = next(r for r in load_rules_file(at.rules).rules if r.name == expected["name"])
    assert rule.org == org and rule.enabled
    assert rule.matches(org, feature, None, expected["match"]["provider"], current)
    assert not rule.matches("acme", feature, None, expected["match"]["provider"], current)
