"""What the Schedule sends to the jobs process: one small call a job, on plain values.

Each of these runs in the jobs process (lectr/proxy/addons/schedule.py starts it) and
imports `lectr.jobs` there, inside the function: the proxy process never loads the jobs,
and nothing a job returns comes back to it (tests/test_layout.py). `failpoints` is the
proxy's lectr_failpoints, armed in the jobs process too (counted there, once per process).
"""

from __future__ import annotations

from lectr.common import faults
from lectr.common.jobsettings import SmtpSettings


def aggregate(db: str, failpoints: str) -> None:
    _runs(failpoints).run_aggregate(db)


def anomalies(db: str, smtp: SmtpSettings, failpoints: str) -> None:
    _runs(failpoints).run_anomalies(db, smtp)


def recommend(db: str, prices_file: str, tiers: str, failpoints: str) -> None:
    _runs(failpoints).run_recommend(db, prices_file=prices_file, tiers=tiers)


def _runs(failpoints: str):
    """The jobs, with the proxy's failpoints armed in this (the jobs) process."""
    faults.use(failpoints)
    from lectr.jobs import runs  # the jobs process's import, never the proxy's

    return runs
