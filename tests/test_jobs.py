"""The aggregator, anomaly detector and recommendation engine on a real DuckDB file, mail to a real SMTP server."""

from __future__ import annotations

import email
import subprocess
import sys
from datetime import datetime, timedelta

import httpx
import pytest
from aiosmtpd.controller import Controller

from lectr.common.events import EventQueue
from lectr.jobs import alerts, runs
from lectr.record import writer
from lectr.store import StorageError, open_store
from lectr.store.duckdb_connection import connect
from lectr.store.migrations import MIGRATIONS

from helpers import ROOT, free_port, query, start_lectr, stop, wait_until

NOW = datetime(2026, 11, 20, 12, 30)


def log_row(ts: datetime, **values) -> dict:
    row = {
        "ts": ts,
        "request_id": f"r{ts.timestamp()}-{id(values)}",
        "org_id": "acme",
        "mode": "base_url",
        "endpoint": "/chat/completions",
        "provider": "openai",
        "provider_unknown": False,
        "model_requested": "gpt-4o",
        "model_actual": "gpt-4o",
        "rule_id": None,
        "rule_name": None,
        "routed": False,
        "route_skip_reason": None,
        "passthrough_reason": None,
        "feature": "support",
        "task": None,
        "task_valid": None,
        "streaming": False,
        "status_code": 200,
        "error_category": None,
        "latency_ms": 100.0,
        "ttfb_ms": 50.0,
        "prompt_tokens": 500,
        "completion_tokens": 20,
        "cached_tokens": 0,
        "token_source": "provider",
        "cost_usd": 0.0015,
        "price_known": True,
        "request_bytes": 1000,
        "response_bytes": 400,
    }
    row.update(values)
    return row


def write(db, rows: list[dict]) -> None:
    open_store(db).append_request_logs(rows)


# --- aggregator ------------------------------------------------------------------------


def test_aggregator_summarises_by_period_and_dimensions(tmp_path):
    db = tmp_path / "a.duckdb"
    hour = datetime(2026, 11, 20, 10, 0)
    write(
        db,
        [log_row(hour + timedelta(minutes=i), latency_ms=float(10 * (i + 1)), cost_usd=0.01) for i in range(10)]
        + [
            log_row(
                hour + timedelta(minutes=5),
                status_code=500,
                error_category="upstream_5xx",
                cost_usd=None,
                prompt_tokens=None,
                completion_tokens=None,
            )
        ]
        + [log_row(hour + timedelta(hours=1), rule_id="r1", model_actual="gpt-4o-mini", routed=True, cost_usd=0.001)],
    )
    open_store(db).append_request_logs([], {"queue_full": 7})
    # Per period: the first hour's 200s and its 500 (rows by status code), and the routed request.
    assert runs.run_aggregate(db, NOW) == 6
    by_hour = query(
        db,
        "SELECT bucket_start, routed, model_actual, sum(requests), sum(errors), sum(prompt_tokens), sum(cost_usd),"
        " sum(unpriced_requests) FROM dashboard_summaries WHERE period = 'hour' GROUP BY ALL ORDER BY bucket_start",
    )
    assert by_hour[0] == (hour, False, "gpt-4o", 11, 1, 5000, pytest.approx(0.1), 1)
    assert by_hour[1][:4] == (hour + timedelta(hours=1), True, "gpt-4o-mini", 1)
    statuses = query(
        db, "SELECT status_code, requests, latency_p50_ms FROM dashboard_summaries WHERE period = 'hour' AND NOT routed"
    )
    assert sorted(statuses) == [(200, 10, pytest.approx(55.0)), (500, 1, pytest.approx(100.0))]
    (day,) = query(db, "SELECT sum(requests), sum(errors) FROM dashboard_summaries WHERE period = 'day' AND NOT routed")
    assert day == (11, 1)
    assert query(db, "SELECT sum(events) FROM dashboard_drops WHERE period = 'day'") == [(7,)]

    (rule,) = query(db, "SELECT rule_id, requests FROM dashboard_summaries WHERE period = 'hour' AND routed")
    assert rule == ("r1", 1)
    # The org's own percentiles per bucket, not a mix of the finer rows' percentiles.
    latency = query(
        db,
        "SELECT all_orgs, requests, latency_p50_ms, latency_p95_ms FROM dashboard_latency WHERE period = 'day' "
        "ORDER BY all_orgs",
    )
    # 10, 20, ..., 100 and two rows at 100: the median is between 60 and 70, the p95 among the 100s. One org
    # here, so all orgs together have the same figures.
    expected = (12, pytest.approx(65.0), pytest.approx(100.0))
    assert latency == [(False, *expected), (True, *expected)]

    write(db, [log_row(hour + timedelta(hours=1, minutes=30), rule_id="r1", model_actual="gpt-4o-mini")])
    runs.run_aggregate(db, NOW + timedelta(minutes=1))  # a second run recomputes, never double counts
    assert query(db, "SELECT sum(requests) FROM dashboard_summaries WHERE period = 'hour'") == [(13,)]
    assert query(db, "SELECT sum(requests) FROM dashboard_summaries WHERE period = 'day'") == [(13,)]


def test_an_older_database_is_migrated_and_fully_resummarised(tmp_path):
    db = tmp_path / "old.duckdb"
    with connect(db) as con:
        con.execute("CREATE TABLE _migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMP)")
        for migration in MIGRATIONS[:3]:
            migration(con)
            con.execute("INSERT INTO _migrations VALUES (?, ?)", [migration.__name__, NOW])
        con.execute("INSERT INTO worker_runs VALUES ('aggregate', ?)", [NOW])
    assert open_store(db).schema_state() == "old"
    write(db, [log_row(NOW - timedelta(days=3), rule_id="r1")])  # the writer migrates
    assert open_store(db).schema_state() == "ok"
    runs.run_aggregate(db, NOW)  # the last run was forgotten: the old bucket is summarised too
    assert query(db, "SELECT rule_id, requests FROM dashboard_summaries WHERE period = 'day'") == [("r1", 1)]


# --- anomaly detector and email ----------------------------------------------------------


class Inbox:
    def __init__(self) -> None:
        self.messages: list[email.message.Message] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield (
        inbox,
        alerts.SmtpSettings(
            host="127.0.0.1", port=controller.port, sender="lectr@test", recipients=("ops@test",), starttls=False
        ),
    )
    controller.stop()


def week_of_traffic(db, spike: float = 1.0) -> None:
    """Seven days of 30 requests an hour at a steady cost, then the last hour's cost times `spike`."""
    rows = []
    for hours_ago in range(0, 7 * 24):
        start = NOW - timedelta(hours=hours_ago + 1)
        cost = 0.002 * (spike if hours_ago == 0 else 1.0 + 0.05 * (hours_ago % 3))
        rows += [log_row(start + timedelta(minutes=2 * i + 1), cost_usd=cost) for i in range(30)]
    write(db, rows)


def test_a_cost_spike_is_recorded_and_mailed_once(tmp_path, smtp):
    inbox, settings = smtp
    db = tmp_path / "a.duckdb"
    week_of_traffic(db, spike=10)
    run = runs.run_anomalies(db, settings, NOW)
    assert {(f.feature, f.metric) for f in run.new} == {(None, "cost_usd"), ("support", "cost_usd")}
    assert run.mailed and len(inbox.messages) == 1
    mail = inbox.messages[0]
    assert mail["To"] == "ops@test" and "[Lectr critical] 2 anomalies for acme" == mail["Subject"]
    assert "cost_usd was 0.6 where 0.063 is usual" in mail.get_payload()
    stored = query(db, "SELECT metric, feature, status, severity, notified_at FROM anomalies ORDER BY feature")
    assert [(r[0], r[1], r[2], r[3]) for r in stored] == [
        ("cost_usd", "support", "open", "critical"),
        ("cost_usd", None, "open", "critical"),
    ]
    assert all(r[4] == NOW for r in stored)

    again = runs.run_anomalies(db, settings, NOW + timedelta(minutes=5))  # 5 minutes later, still going on
    assert again.new == [] and len(again.ongoing) == 2 and len(inbox.messages) == 1

    later = runs.run_anomalies(db, settings, NOW + timedelta(hours=2))  # the spike hour is now history
    assert later.resolved == 2 and later.new == []
    assert query(db, "SELECT count(*) FROM anomalies WHERE status = 'resolved'") == [(2,)]


def test_normal_traffic_raises_nothing(tmp_path, smtp):
    inbox, settings = smtp
    db = tmp_path / "a.duckdb"
    week_of_traffic(db, spike=1.05)
    run = runs.run_anomalies(db, settings, NOW)
    assert run.new == [] and inbox.messages == []


def test_a_mail_server_that_is_down_does_not_stop_detection_and_the_alert_is_sent_later(tmp_path, smtp):
    db = tmp_path / "a.duckdb"
    week_of_traffic(db, spike=10)
    inbox, up = smtp
    down = alerts.SmtpSettings(host="127.0.0.1", port=free_port(), recipients=("ops@test",), starttls=False)
    run = runs.run_anomalies(db, down, NOW)
    assert len(run.new) == 2 and not run.mailed and "ConnectionRefused" in run.mail_error
    assert query(db, "SELECT count(*) FROM anomalies WHERE notify_error IS NOT NULL AND notified_at IS NULL") == [(2,)]
    # The server is back at the next run: the same two anomalies, still open, are mailed then, once.
    later = runs.run_anomalies(db, up, NOW + timedelta(minutes=5))
    assert len(later.ongoing) == 2 and later.mailed and later.mail_error is None
    assert len(inbox.messages) == 1 and "2 anomalies" in inbox.messages[0]["Subject"]
    assert query(db, "SELECT count(*) FROM anomalies WHERE notify_error IS NULL AND notified_at IS NOT NULL") == [(2,)]
    runs.run_anomalies(db, up, NOW + timedelta(minutes=10))
    assert len(inbox.messages) == 1


# --- recommendations -------------------------------------------------------------------


def test_recommendations_from_stored_traffic_and_the_cli(tmp_path):
    db = tmp_path / "a.duckdb"
    start = NOW - timedelta(days=10)
    rows = []
    for i in range(200):
        ts = start + timedelta(hours=i)
        rows.append(
            log_row(
                ts, feature="tagger", task="classification", prompt_tokens=300, completion_tokens=5, cost_usd=0.0008
            )
        )
        rows.append(
            log_row(
                ts,
                feature="planner",
                task="reasoning",
                model_actual="gpt-5",
                prompt_tokens=300,
                completion_tokens=5,
                cost_usd=0.0004,
            )
        )
    write(db, rows)
    found = runs.run_recommend(db, NOW)
    assert [(r.feature, r.current_model, r.suggested_model, r.confidence) for r in found] == [
        ("tagger", "gpt-4o", "gpt-4o-mini", "high")
    ]
    stored = query(db, "SELECT feature, suggested_model, monthly_saving_usd, rule_yaml FROM recommendations")
    assert stored[0][0:2] == ("tagger", "gpt-4o-mini") and stored[0][2] > 0
    assert "feature: tagger" in stored[0][3] and "model: gpt-4o-mini" in stored[0][3]

    cli = subprocess.run(
        [sys.executable, "-m", "lectr.admin.cli", "recommend", "--db", str(db)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert cli.returncode == 0 and "acme/tagger: gpt-4o -> gpt-4o-mini" in cli.stdout
    assert "planner" not in cli.stdout  # reasoning is never downgraded


# --- the proxy runs them on a schedule ----------------------------------------------------


def test_the_proxy_runs_the_aggregator_on_its_schedule(simulator_process, tmp_path):
    lectr = start_lectr(tmp_path, simulator_process.url, options={"lectr_flush_ms": 100, "lectr_aggregate_every": 1})
    try:
        r = httpx.post(
            f"{lectr.url}/v1/chat/completions",
            json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
            headers={"X-Lectr-Key": lectr.key, "X-Lectr-Feature": "scheduled", "Authorization": "Bearer sk-c"},
        )
        assert r.status_code == 200

        def summarised() -> bool:
            try:
                sql = "SELECT count(*) FROM dashboard_summaries WHERE feature = 'scheduled'"
                return query(lectr.db_path, sql)[0][0] == 2
            except StorageError:
                return False

        wait_until(summarised, timeout=15, what="the scheduled aggregation")
    finally:
        stop(lectr.proc)


def test_an_idle_writer_notes_a_heartbeat_once_a_minute(tmp_path, monkeypatch):
    db = tmp_path / "w.duckdb"
    clock = [1000.0]
    monkeypatch.setattr(writer.time, "monotonic", lambda: clock[0])
    w = writer.Writer(str(db), EventQueue(maxsize=10, batch_size=10))
    assert w.flush() and not db.exists()  # just started: nothing to write yet
    clock[0] += writer.HEARTBEAT_SECONDS + 1
    assert w.flush()
    (first,) = query(db, "SELECT last_run FROM worker_runs WHERE worker = 'writer'")[0]
    clock[0] += 10
    w.flush()  # within the minute: no second write
    assert query(db, "SELECT last_run FROM worker_runs WHERE worker = 'writer'") == [(first,)]
