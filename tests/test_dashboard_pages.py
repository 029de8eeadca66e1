"""The Anomalies and Recommendations pages read as a new user needs: values in their units,
why no alert went out, evidence as a table, savings per confidence level, rules for the
recommendation's own org, and shadow experiments: started in one step, followed (agreement and
its interval, costs, latency, errors, why one is blocked), stopped; a withdrawn recommendation apart.

They run with Streamlit's AppTest on a copy of the demo database (tests/test_dashboard.py's
fixtures: demo traffic through the real proxy); each figure is checked against SQL on it.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta
from urllib.parse import quote

import duckdb
import pytest
import test_dashboard
import yaml
from streamlit.testing.v1.element_tree import Markdown, Subheader
from test_dashboard import metric, no_errors

from lectr.common.experiments import SAMPLE_RATE, load_experiments_file
from lectr.common.rules import load_rules_file
from lectr.jobs import alerts, runs
from lectr.shadow import evidence
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
    [expected] = yaml.safe_load(rule_yaml)
    key = card_key(org, feature, expected["match"]["provider"], current)
    assert at.button(key=f"rec_add_{key}").label == f"Add as rule for {org}"
    at.checkbox(key=f"rec_enable_{key}").check()
    at.button(key=f"rec_add_{key}").click().run()
    no_errors(at)
    assert any(f"for {org} at priority" in s.value for s in at.success)
    rule = next(r for r in load_rules_file(at.rules).rules if r.name == expected["name"])
    assert rule.org == org and rule.enabled
    assert rule.matches(org, feature, None, expected["match"]["provider"], current)
    assert not rule.matches("acme", feature, None, expected["match"]["provider"], current)


# --- shadow experiments on the Recommendations page -----------------------------------------------

RECS = (
    "SELECT org_id, feature, provider, current_model, suggested_model, confidence, monthly_saving_usd, evidence "
    "FROM recommendations ORDER BY CASE confidence WHEN 'high' THEN 0 WHEN 'medium' THEN 1 ELSE 2 END, "
    "monthly_saving_usd DESC"
)
NO_KEY = (
    "Lectr has no openai key of its own for org 'acme': add providers.openai.api_key to secrets.yaml (read within "
    "a second) or set LECTR_OPENAI_API_KEY and restart Lectr"
)


@pytest.fixture
def experiments_file(app, monkeypatch):
    """Where the page keeps experiments: beside the rules file, as the proxy looks for it."""
    monkeypatch.delenv("LECTR_EXPERIMENTS", raising=False)
    return app.rules.parent / "experiments.yaml"


def card_key(org: str, feature: str, provider: str, model: str) -> str:
    """A recommendation card's widget keys: its traffic, whatever its place on the page."""
    return "|".join(quote(part, safe="") for part in (org, feature, provider, model))


def first_rec(at) -> dict:
    names = ("org_id", "feature", "provider", "current_model", "suggested_model", "confidence", "saving", "evidence")
    rec = dict(zip(names, query(at.db, RECS)[0]))
    return rec | {"key": card_key(rec["org_id"], rec["feature"], rec["provider"], rec["current_model"])}


def minutes_ago_today(n: int) -> datetime:
    """n minutes ago, but never before today's 00:00 UTC, so the page's "today" counts every row at any hour
    (just after midnight, n milliseconds before 00:00:00.1 instead); a larger n is always earlier."""
    assert n < 100
    now = utc_now()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return max(now - timedelta(minutes=n), midnight + timedelta(milliseconds=100 - n))


def shadow_call(experiment: str, rec: dict, n: int, outcome: str, **fields) -> dict:
    """A shadow_calls row as lectr/shadow/runner.py writes it: every column of migration m010."""
    task = next(iter(json.loads(rec["evidence"])["task_mix"]), None) if rec.get("evidence") else None
    row = {
        "ts": minutes_ago_today(n),
        "experiment_id": experiment,
        "request_id": f"{experiment}-{n}",
        "org_id": rec["org_id"],
        "feature": rec["feature"],
        "task": task,
        "live_provider": rec["provider"],
        "live_model": rec["current_model"],
        "provider": rec["provider"],
        "model": rec["suggested_model"],
        "outcome": outcome,
        "detail": None,
        "comparison": None,
        "score": None,
        "agreed": None,
        "length_ratio": None,
        "status_code": None,
        "latency_ms": None,
        "live_latency_ms": 900.0 + n,
        "prompt_tokens": None,
        "completion_tokens": None,
        "cost_usd": None,
        "live_prompt_tokens": 420,
        "live_completion_tokens": 6,
        "live_cost_usd": 0.0011,
    }
    if outcome in ("compared", "candidate_error"):
        row.update(status_code=200, latency_ms=300.0 + n, prompt_tokens=420, cost_usd=0.00007)
    if outcome == "compared":
        agreed = fields.pop("agreed")
        row.update(comparison="label", score=float(agreed), agreed=agreed, length_ratio=1.0, completion_tokens=6)
    return row | fields


def write_shadow_calls(db, rows: list[dict]) -> None:
    columns = {
        c
        for (c,) in query(
            db, "SELECT column_name FROM information_schema.columns WHERE table_name = ?", ["shadow_calls"]
        )
    }
    assert all(set(r) == columns for r in rows)
    open_store(db).append_request_logs([], None, shadow=rows)
    common.clear_cache()


def test_shadow_test_it_adds_the_experiment_to_the_experiments_file(app, experiments_file):
    at = show(app, "recommendations")
    rec = first_rec(at)
    assert not experiments_file.exists()
    at.button(key=f"rec_shadow_{rec['key']}").click().run()
    no_errors(at)

    [added] = load_experiments_file(experiments_file).experiments
    assert added.name == f"{rec['org_id']} {rec['feature']}: {rec['current_model']} vs {rec['suggested_model']}"
    assert (added.org, added.feature, added.provider, added.model) == (
        rec["org_id"],
        rec["feature"],
        rec["provider"],
        rec["current_model"],
    )
    assert (added.candidate_model, added.enabled, added.sample_rate) == (rec["suggested_model"], True, SAMPLE_RATE)
    [message] = [s.value for s in at.success]
    assert f"Added shadow experiment '{added.name}' to `{experiments_file}`" in message
    assert "picks it up within a second" in message and "~10% of the matching requests" in message
    assert f"with Lectr's own {rec['provider']} key, at most 500 requests and $2.00 a day" in message
    # The card now follows the experiment, and a second one cannot be started on the same traffic.
    assert not [b for b in at.button if b.key == f"rec_shadow_{rec['key']}"]
    assert at.button(key=f"rec_shadow_toggle_{rec['key']}").label == "Stop"
    assert any(
        f"**Shadow test** of `{rec['suggested_model']}`" in m.value and "waiting for matching traffic" in m.value
        for m in at.markdown
    )
    assert any(s.value == "Shadow experiments" for s in at.subheader)


def test_a_running_experiment_shows_agreement_and_a_blocked_one_why(app, experiments_file):
    rec = first_rec(app)
    research = {
        "org_id": "acme",
        "feature": "research",
        "provider": "openai",
        "current_model": "o3",
        "suggested_model": "o3-mini",
        "evidence": json.dumps({"task_mix": {"reasoning": 1}}),
    }
    experiments_file.write_text(
        yaml.safe_dump(
            {
                "experiments": [
                    {
                        "name": "on the first recommendation",
                        "id": "first",
                        "org": rec["org_id"],
                        "match": {
                            "feature": rec["feature"],
                            "provider": rec["provider"],
                            "model": rec["current_model"],
                        },
                        "candidate": {"model": rec["suggested_model"]},
                    },
                    {
                        "name": "research on o3-mini",
                        "id": "research",
                        "org": "acme",
                        "match": {"feature": "research", "provider": "openai", "model": "o3"},
                        "candidate": {"model": "o3-mini"},
                    },
                ]
            },
            sort_keys=False,
        )
    )
    calls = [shadow_call("first", rec, n, "compared", agreed=n >= 2) for n in range(40)]  # 38 of 40 agreed
    calls.append(shadow_call("first", rec, 41, "candidate_error", detail="500 server_error"))
    calls += [shadow_call("research", research, 50 + n, "compared", agreed=True) for n in range(2)]
    calls += [shadow_call("research", research, n, "blocked", detail=NO_KEY) for n in range(3)]  # the latest
    write_shadow_calls(app.db, calls)

    at = show(app, "recommendations")
    low, high = evidence.wilson(38, 40)
    interval = f"95.0% (38 of 40 pairs; 95% CI {100 * low:.1f}%–{100 * high:.1f}%)"
    card = next(m.value for m in at.markdown if m.value.startswith("- **agreement** 95.0%"))  # the recommendation's
    assert f"- **agreement** {interval}" in card
    assert f"- **cost per request** {common.usd(0.0011)} now, {common.usd(0.00007)} the candidate" in card
    # The medians of 900 + n and 300 + n ms over the 40 pairs; the candidate's one error.
    assert " · **p50 latency** 920 ms now, 320 ms the candidate · **candidate errors** 1\n" in card
    assert "- **today** 41 of 500 shadow requests" in card and "**not sent**" not in card
    assert any(
        "Confidence it would earn now: **medium** · shadow test: 38 of 40 answers agreed" in c.value for c in at.caption
    )
    # Without a key the experiment does not run, and the page says why, with the fix.
    assert any(w.value == f"The experiment is not running: {NO_KEY}" for w in at.warning)
    assert any(
        "reasoning traffic is never recommended for a downgrade, whatever the agreement" in c.value for c in at.caption
    )
    [(spend,)] = query(at.db, "SELECT sum(cost_usd) FROM shadow_calls WHERE experiment_id IN ('first', 'research')")
    assert any(f"Shadow tests spent **{common.usd(spend)}** in the last 30 days" in m.value for m in at.markdown)

    # Stop: enabled false in the file, the evidence kept.
    at.button(key="exp_toggle_first").click().run()
    no_errors(at)
    assert any("Stopped 'on the first recommendation'" in s.value for s in at.success)
    assert [(e.id, e.enabled) for e in load_experiments_file(experiments_file).experiments] == [
        ("first", False),
        ("research", True),
    ]
    assert at.button(key=f"rec_shadow_toggle_{rec['key']}").label == "Resume"
    assert any(m.value.startswith(f"- **agreement** {interval}") for m in at.markdown)
    at.button(key="exp_delete_research").click().run()
    no_errors(at)
    assert [e.id for e in load_experiments_file(experiments_file).experiments] == ["first"]

    overview = show(app, "overview")
    assert any(
        c.value
        == f"Shadow tests spent {common.usd(spend)} in this window, counted in none of this page's figures (see "
        "Recommendations)"
        for c in overview.caption
    )


def test_a_withdrawn_recommendation_is_shown_apart_and_not_counted(app, experiments_file):
    ranked = query(app.db, RECS)
    org, feature, provider, current, suggested, confidence, saving, stored = ranked[0]
    result = {
        "experiment_id": "x",
        "provider": provider,
        "model": suggested,
        "pairs": 40,
        "agreed": 20,
        "spend_usd": 0.05,
    }
    shadow_test = evidence.summary(result)
    with duckdb.connect(str(app.db)) as con:
        con.execute(
            "UPDATE recommendations SET confidence = 'withdrawn', reason = ?, evidence = ? "
            "WHERE org_id = ? AND feature = ? AND current_model = ?",
            [
                evidence.verdict(result)[1],
                json.dumps(json.loads(stored) | {"shadow_test": shadow_test}),
                org,
                feature,
                current,
            ],
        )
    common.clear_cache()
    at = show(app, "recommendations")
    for level in ("high", "medium", "low"):
        same = [r[6] for r in ranked[1:] if r[5] == level]
        label = f"{level.capitalize()} confidence · {len(same)} recommendation{'' if len(same) == 1 else 's'}"
        assert metric(at, label) == f"{common.usd(sum(same))} / month"
    order = [n.value for n in at.main if isinstance(n, (Markdown, Subheader))]  # as on the page, top down
    head = f"**{feature}** · `{current}` → `{suggested}` ({provider}) · confidence **withdrawn**"
    at_head = next(i for i, v in enumerate(order) if head in str(v))
    assert order.index("Withdrawn after a shadow test") < at_head < order.index("Shadow experiments")
    assert metric(at, "would have saved / month") == common.usd(saving)
    table = next(
        dict(t.value.itertuples(index=False)) for t in at.table if "shadow test: agreement" in set(t.value["evidence"])
    )
    low, high = shadow_test["agreement_95ci"]
    assert table["shadow test: agreement"] == f"50.0% (20 of 40 pairs; 95% CI {100 * low:.1f}%–{100 * high:.1f}%)"
    assert table["shadow test: shadow spend"] == "$0.05"
    assert len([b for b in at.button if b.key.startswith("rec_add_")]) == len(ranked) - 1  # no rule for it


def experiment(eid: str, match: dict, model: str, **fields) -> dict:
    return {"name": eid, "id": eid, "match": match, "candidate": {"model": model}, **fields}


def test_an_experiment_on_task_alone_lists_each_traffic_and_its_caps_count_all_of_them(app, experiments_file):
    """One experiment, two orgs' features: a row each, labelled by what differs; its caps are the experiment's."""
    rec = first_rec(app)
    task = next(iter(json.loads(rec["evidence"])["task_mix"]))
    other = rec | {"org_id": "umbrella", "feature": "tickets"}
    experiments_file.write_text(
        yaml.safe_dump(
            {"experiments": [experiment("labels", {"task": task}, rec["suggested_model"], max_requests_per_day=30)]}
        )
    )
    calls = [shadow_call("labels", rec, n, "compared", agreed=True) for n in range(20)]
    calls += [shadow_call("labels", other, n, "compared", agreed=True) for n in range(12)]
    write_shadow_calls(app.db, calls)  # 20 and 12 sent today: each below the cap of 30, together above it

    at = show(app, "recommendations")
    labels = {m.value for m in at.markdown}
    assert f"org **{rec['org_id']}** · feature **{rec['feature']}**" in labels
    assert "org **umbrella** · feature **tickets**" in labels
    spent = common.usd(32 * 0.00007)
    today = f"**today** 32 of 30 shadow requests, {spent} of $2.00 over all its traffic"
    listed = [m.value for m in at.markdown if m.value.startswith("- **agreement** 100.0%")]
    assert len(listed) == 3 and all(today in m for m in listed)  # the card's, and a row each in the list
    heads = [m.value for m in at.markdown if m.value.startswith("**Shadow test** of")]
    assert len(heads) == 3 and all(":orange[capped for today: sends again after 00:00 UTC]" in h for h in heads)

    # One org's page lists its row alone, and the caps still count the other org's requests.
    at = show(app, "recommendations", org=rec["org_id"])
    assert not any(m.value.startswith("org **") for m in at.markdown)
    listed = [m.value for m in at.markdown if m.value.startswith("- **agreement** 100.0% (20 of 20")]
    assert len(listed) == 2 and all(today in m for m in listed)
    assert not any("umbrella" in m.value for m in at.markdown)


def test_a_card_shows_the_experiment_sampling_its_traffic_and_judges_by_the_most_pairs(app, tmp_path):
    """The card follows what the proxy and the recommendation engine do: the first enabled experiment that takes
    the traffic's samples (however broad), and the result with the most pairs for the confidence it would earn."""
    rec = first_rec(app)
    path = tmp_path / "elsewhere" / "shadow.yaml"  # named in the sidebar, as LECTR_EXPERIMENTS or lectr_experiments
    path.parent.mkdir()
    exact = {"feature": rec["feature"], "provider": rec["provider"], "model": rec["current_model"]}
    broad = {"provider": rec["provider"], "model": rec["current_model"]}
    path.write_text(
        yaml.safe_dump(
            {
                "experiments": [
                    experiment("old", exact, rec["suggested_model"], org=rec["org_id"], enabled=False),
                    experiment("broad", broad, rec["suggested_model"]),
                ]
            }
        )
    )
    # The old one measured a candidate no cheaper: it earns no recommendation, whatever its agreement.
    calls = [shadow_call("old", rec, n, "compared", agreed=True, cost_usd=0.002) for n in range(40)]
    calls += [shadow_call("broad", rec, n, "compared", agreed=True) for n in range(3)]
    write_shadow_calls(app.db, calls)

    app.text_input(key="experiments").set_value(str(path))
    at = show(app, "recommendations")
    assert any(c.value.startswith(f"`{path}` · changes apply within a second") for c in at.caption)
    assert not [b for b in at.button if b.key == f"rec_shadow_{rec['key']}"]  # the broad one samples it already
    assert at.button(key=f"rec_shadow_toggle_{rec['key']}").label == "Stop"
    card = next(m.value for m in at.markdown if m.value.startswith("- **agreement** 100.0% (3 of 3"))
    assert "**today** 43 of 500" not in card and "**today** 3 of 500" in card
    not_cheaper = "none: the candidate is not cheaper on this traffic"
    judged = next(c.value for c in at.caption if c.value.startswith("The next recommendation run judges"))
    assert judged.startswith(
        f"The next recommendation run judges this traffic by experiment 'old', with the most pairs on it (40): "
        f"confidence it would earn now **{not_cheaper}** · shadow test: 40 of 40 answers agreed"
    )

    # Stopped, the broad one no longer samples it: the card shows the old one's evidence, which the engine uses.
    at.button(key=f"rec_shadow_toggle_{rec['key']}").click().run()
    no_errors(at)
    assert [(e.id, e.enabled) for e in load_experiments_file(path).experiments] == [("old", False), ("broad", False)]
    assert at.button(key=f"rec_shadow_toggle_{rec['key']}").label == "Resume"
    assert not any(c.value.startswith("The next recommendation run judges") for c in at.caption)
    assert any(
        c.value.startswith(f"Confidence it would earn now: **{not_cheaper}** · shadow test: 40 of 40")
        for c in at.caption
    )
    assert any("its evidence stays (the last 30 days count)" in m.value for m in at.markdown)
