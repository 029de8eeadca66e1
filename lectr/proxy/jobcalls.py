"""What the Schedule sends to the jobs process: one small call a job, on plain values.

Each of these runs in the jobs process (lectr/proxy/addons/schedule.py starts it) and
imports `lectr.jobs` there, inside the function: the proxy process never loads the jobs,
and nothing a job returns comes back to it (tests/test_layout.py). `failpoints` is the
proxy's lectr_failpoints, armed in the jobs process too (counted there, once per process).
`every` is the job's interval (lectr_<job>_every): with several hosts on one PostgreSQL store, the
host whose turn it is not skips the run (lectr/jobs/runs.py).
"""

from __future__ import annotations

from lectr.common import faults
from lectr.common.jobsettings import SmtpSettings


def aggregate(db: str, every: float, failpoints: str) -> None:
    _runs(failpoints).run_aggregate(db, every=every)


def anomalies(db: str, smtp: SmtpSettings, every: float, failpoints: str) -> None:
    _runs(failpoints).run_anomalies(db, smtp, every=every)


def recommend(db: str, prices_file: str, tiers: str, every: float, failpoints: str) -> None:
    _runs(failpoints).run_recommend(db, prices_file=prices_file, tiers=tiers, every=every)


def _runs(failpoints: str):
    """The jobs, with the proxy's failpoints armed in this (the jobs) process."""
    faults.use(failpoints)
    from lectr.jobs import runs  # the jobs process's import, never the proxy's

    return runs
