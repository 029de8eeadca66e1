"""Schedule in mitmproxy's test context: its options, and the calls it hands the jobs process."""

from __future__ import annotations

import asyncio
import pickle

import pytest
from mitmproxy import exceptions
from mitmproxy.test import taddons

from lectr.common.jobsettings import SmtpSettings
from lectr.proxy import jobcalls
from lectr.proxy.addons.auth import Auth
from lectr.proxy.addons.recorder import Recorder
from lectr.proxy.addons.schedule import Schedule

SMTP_VARIABLES = ("HOST", "PORT", "FROM", "TO", "STARTTLS", "USER", "PASSWORD")


@pytest.fixture
def schedule(monkeypatch):
    for name in SMTP_VARIABLES:
        monkeypatch.delenv(f"LECTR_SMTP_{name}", raising=False)
    addon = Schedule()
    with taddons.context(Auth(), Recorder(), addon) as tctx:  # lectr_db and lectr_prices_file are theirs
        yield tctx, addon
        addon.done()


class TestScheduleOptions:
    def test_a_negative_interval_is_refused_with_how_to_turn_the_job_off(self, schedule):
        tctx, addon = schedule
        must = r"^lectr_anomalies_every must be a whole number of seconds >= 0, got -1: set it to 0 to turn the"
        with pytest.raises(exceptions.OptionsError, match=must):
            tctx.configure(addon, lectr_anomalies_every=-1)

    @pytest.mark.parametrize(
        "option, value, must",
        [
            ("lectr_smtp_port", 0, "a port number from 1 to 65535, got 0"),
            ("lectr_smtp_port", 70000, "a port number from 1 to 65535, got 70000"),
            ("lectr_smtp_to", "ops@example.com, on call", "email addresses, comma-separated, got 'ops@example.com, on"),
            ("lectr_smtp_from", "lectr at example.com", "an email address, got 'lectr at example.com'"),
            ("lectr_smtp_from", " ", "an email address, got ' '"),
        ],
    )
    def test_an_alert_email_no_server_would_take_is_refused(self, schedule, option, value, must):
        tctx, addon = schedule
        with pytest.raises(exceptions.OptionsError, match=f"^{option} must be {must}"):
            tctx.configure(addon, lectr_smtp_host="smtp.example.com", **{option: value})

    def test_the_mail_settings_are_not_checked_while_mail_is_off_and_a_local_name_is_an_address(self, schedule):
        tctx, addon = schedule
        tctx.configure(addon, lectr_smtp_port=0, lectr_smtp_from=" ")  # no host: no mail, nothing to refuse
        local = dict(lectr_smtp_host="localhost", lectr_smtp_port=25, lectr_smtp_from="lectr", lectr_smtp_to="root")
        tctx.configure(addon, **local)
        assert (addon.smtp.sender, addon.smtp.recipients) == ("lectr", ("root",))

    def test_the_smtp_options_are_parsed_into_the_settings_the_job_gets(self, schedule, monkeypatch):
        tctx, addon = schedule
        monkeypatch.setenv("LECTR_SMTP_PASSWORD", "s3cret")  # never an option
        tctx.configure(addon, lectr_smtp_host="smtp.example.com", lectr_smtp_to="ops@example.com, oncall@example.com")
        assert addon.smtp == SmtpSettings(
            host="smtp.example.com",
            recipients=("ops@example.com", "oncall@example.com"),
            password="s3cret",
        )
        assert addon.smtp.enabled

    def test_the_environment_is_the_smtp_options_default(self, monkeypatch):
        monkeypatch.setenv("LECTR_SMTP_HOST", "mail.internal")
        monkeypatch.setenv("LECTR_SMTP_PORT", "2525")
        monkeypatch.setenv("LECTR_SMTP_STARTTLS", "no")
        monkeypatch.setenv("LECTR_SMTP_TO", "a@x.org,b@x.org")
        addon = Schedule()
        with taddons.context(addon) as tctx:
            options = tctx.options
            assert (options.lectr_smtp_host, options.lectr_smtp_port) == ("mail.internal", 2525)
            assert (options.lectr_smtp_starttls, options.lectr_smtp_to) == (False, "a@x.org,b@x.org")
            assert options.lectr_smtp_from == "lectr@localhost" and options.lectr_aggregate_every == 60


class TestSchedule:
    async def test_each_job_on_runs_on_its_schedule_and_done_stops_them(self, schedule):
        tctx, addon = schedule
        tctx.configure(addon, lectr_aggregate_every=3600, lectr_anomalies_every=0, lectr_recommend_every=3600)
        addon.running()
        tasks = list(addon._tasks)
        assert len(tasks) == 2  # anomalies: 0, never
        addon.done()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert all(task.cancelled() for task in tasks) and addon._tasks == []

    def test_the_jobs_process_gets_plain_values_and_calls_that_import_the_jobs_there(self, schedule, tmp_path):
        tctx, addon = schedule
        tctx.configure(addon, lectr_smtp_to="ops@example.com", lectr_anomalies_every=120)
        tctx.options.update(lectr_db=str(tmp_path / "l.duckdb"), lectr_tiers="")
        calls = addon.aggregate(tctx.options), addon.anomalies(tctx.options), addon.recommend(tctx.options)
        aggregate, anomalies, recommend = calls
        assert [c.func for c in calls] == [jobcalls.aggregate, jobcalls.anomalies, jobcalls.recommend]
        # each with its interval: a host that finds the job run elsewhere within it skips its turn
        assert aggregate.args == (str(tmp_path / "l.duckdb"), 60, "")
        assert anomalies.args == (str(tmp_path / "l.duckdb"), addon.smtp, 120, "")
        assert recommend.args == (str(tmp_path / "l.duckdb"), "prices.yaml", "", 86400, "")
        for call in calls:
            assert b"lectr.jobs" not in pickle.dumps(call)  # the proxy builds nothing of the jobs' own
