"""Two Lectr hosts behind HAProxy sharing one PostgreSQL: keys, rules, losing a host, a soak.

Real processes throughout: a temporary PostgreSQL server (scripts/harness/postgres.py), two
`mitmdump -s addons/lectr.py` "hosts" at 127.0.0.2 and 127.0.0.3, each in a directory and a process
group of its own (with its writer and jobs processes, so that a host is killed whole, as the loss of
its machine would end it), with a provider simulator of its own (so the test can tell which host
served a request), HAProxy in front, the `lectr` CLI, and the official openai SDK. The one file the
hosts share is the mitmproxy CA (their confdir), as a team hands out one CA to every host; keys,
rules and rows they share through PostgreSQL only.

"Within a second" (a key, a revocation, a rule reaching the other host) is the issue's target, a
figure to measure rather than a bound for a shared CI machine: the tests fail past 10 s and print
the time each change took (`pytest -s` shows it).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import openai
import psycopg
import pytest
from harness import Workers, start_workers

from helpers import ROOT, Simulator, free_port, simulator_env, start_simulator, stop, wait_until

pytestmark = pytest.mark.slow  # starts PostgreSQL, two simulators, two proxies and HAProxy

LECTR_CLI = str(Path(sys.executable).with_name("lectr"))


def live_members(group: int) -> list[int]:
    """The processes of process group `group` that have not exited (zombies left out)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _parent, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):  # gone meanwhile
            continue
        if state != "Z" and int(pgrp) == group:
            found.append(int(stat.parent.name))
    return found


def end_group(group: int, grace: float = 10) -> None:
    """Whatever is left of a host's process group (its writer finishing a batch, its jobs): given
    `grace` seconds to exit, then killed."""
    deadline = time.monotonic() + grace
    while live_members(group) and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        os.killpg(group, signal.SIGKILL)
    except ProcessLookupError:
        pass  # nothing left in it


@dataclass
class Hosts:
    workers: Workers  # HAProxy and the hosts, each leading a process group of its own (its pid is the group's)
    db: str  # the PostgreSQL URL both write
    sims: list[Simulator]  # each host's provider

    @property
    def url(self) -> str:  # HAProxy's
        return self.workers.url

    @property
    def addresses(self) -> list[str]:  # each host's own
        return self.workers.addresses

    @property
    def procs(self) -> list[subprocess.Popen]:
        return self.workers.procs

    @property
    def dirs(self) -> list[Path]:  # each host's working directory
        return [db.with_suffix("") for db in self.workers.dbs]

    def kill(self, host: int) -> None:
        """Kill a host as the loss of its machine would: the proxy, its writer and its jobs at once."""
        os.killpg(self.procs[host].pid, signal.SIGKILL)

    def stop(self) -> None:
        """HAProxy, then the hosts (SIGINT: each writes what it holds), then anything left in their
        process groups. Again: nothing more to do."""
        self.workers.stop()
        for proc in self.procs:
            end_group(proc.pid)

    def cli(self, *args: str, host: int = 0) -> str:
        """`lectr ARGS --db <the database>`, as run on one host (in its directory)."""
        run = subprocess.run(
            [LECTR_CLI, *args, "--db", self.db], cwd=self.dirs[host], capture_output=True, text=True, timeout=60
        )
        assert run.returncode == 0, run.stdout + run.stderr
        return run.stdout

    def rows(self, sql: str) -> list[tuple]:
        with psycopg.connect(self.db) as conn:
            return conn.execute(sql).fetchall()


@pytest.fixture
def hosts(pg_url, tmp_path):
    db = pg_url
    sims, logs = [], []
    try:
        for i in range(2):
            port = free_port()
            logs.append(open(tmp_path / f"sim-{i + 1}.log", "w"))
            sims.append(Simulator(f"http://127.0.0.1:{port}", start_simulator(port, logs[-1])))
        options = {"lectr_rules": "db", "confdir": tmp_path / "confdir"}  # one CA, as a team would hand it out
        envs = [simulator_env(sim.url) for sim in sims]
        workers = start_workers(2, tmp_path, options, envs, store=db, prefix="host", new_session=True)
        hosts = Hosts(workers, db, sims)
        try:
            yield hosts
        finally:
            hosts.stop()
    finally:
        for sim in sims:
            stop(sim.proc)
        for log in logs:
            log.close()


def client(url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="sk-client", default_headers={"X-Lectr-Key": key}, max_retries=0)


def ask(c: openai.OpenAI, tag: str, feature: str = "") -> int:
    """One chat, tagged (its feature, unless named, and its text) so that the database and the simulators
    can be checked."""
    try:
        c.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": tag}],
            extra_headers={"X-Lectr-Feature": feature or tag},
        )
        return 200
    except openai.APIStatusError as e:
        return e.status_code
    except openai.APIConnectionError:
        return 0


def text(received: dict) -> str:
    """The message a provider received (the tag)."""
    return received["body"]["messages"][0]["content"]


def applies(what: str, check, timeout: float = 10) -> None:
    """Wait for a change to apply (`check` polled every 50 ms; fails past `timeout`), and print how long
    it took (`pytest -s` shows it)."""
    start = time.monotonic()
    wait_until(check, timeout=timeout, what=what)
    print(f"{what}: {time.monotonic() - start:.2f}s")


def test_a_key_made_on_one_host_works_on_the_other_and_a_rule_applies_on_both(hosts):
    key = hosts.cli("keys", "create", "acme", host=0).strip().splitlines()[-1]
    on_second = client(f"http://{hosts.addresses[1]}", key)
    applies("a key made on one host, working on the other", lambda: ask(on_second, "first") == 200)

    key_id = key.split("_")[1]
    hosts.cli("keys", "revoke", key_id, host=1)
    on_first = client(f"http://{hosts.addresses[0]}", key)
    applies("a key revoked on one host, refused on the other", lambda: ask(on_first, "revoked") == 401)

    # A rule added on the dashboard (its Rules page, the rules kept in the database) applies on both hosts.
    key = hosts.cli("keys", "create", "acme", host=1).strip().splitlines()[-1]
    add_rule_on_the_dashboard(hosts.db, name="Hosts to mini", feature="routed", model="gpt-4o-mini")
    for i, address in enumerate(hosts.addresses):
        c = client(f"http://{address}", key)

        def routed() -> bool:
            hosts.sims[i].clear()
            return (
                ask(c, f"routed-{i}", "routed") == 200
                and hosts.sims[i].received()[-1]["body"]["model"] == "gpt-4o-mini"
            )

        applies(f"a rule added on the dashboard, applied on host {i + 1}", routed)


def add_rule_on_the_dashboard(db: str, name: str, feature: str, model: str) -> None:
    """The dashboard's Rules page (Streamlit's AppTest runs the app's script) adds a rule to the database."""
    from streamlit.testing.v1 import AppTest

    from lectr.admin import rulesfile, yamlfile

    env = {"LECTR_DB": db, "LECTR_RULES": "db"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=60).run()
        at.switch_page("views/rules.py").run()
        version = rulesfile.read(yamlfile.source("db", db, "rules")).version[:8]
        at.text_input(key=f"add_{version}_name").input(name)
        at.number_input(key=f"add_{version}_priority").set_value(1)
        at.text_input(key=f"add_{version}_feature").input(feature)
        at.text_input(key=f"add_{version}_target_model").input(model)
        at.button(key=f"add_{version}_submit").click().run()
        assert not at.exception and any(f"Added '{name}'" in s.value for s in at.success), [e.value for e in at.error]
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_killing_a_host_loses_nothing_the_other_served_and_a_soak_stores_every_request(hosts):
    key = hosts.cli("keys", "create", "acme").strip().splitlines()[-1]
    through = client(hosts.url, key)
    wait_until(lambda: all(ask(client(f"http://{a}", key), "warm") == 200 for a in hosts.addresses), timeout=5)

    # The soak: both hosts up, every request answered and stored, nothing dropped.
    n = 1000
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda i: ask(through, f"soak-{i}"), range(n)))
    assert codes.count(200) == n
    served = [
        len([r for r in sim.received() if r["body"]["messages"][0]["content"].startswith("soak-")])
        for sim in hosts.sims
    ]
    assert min(served) > n / 4, f"HAProxy sent {served} to the two hosts"
    count = "SELECT count(*) FROM request_logs WHERE feature LIKE 'soak-%'"
    wait_until(lambda: hosts.rows(count)[0][0] >= n, timeout=20, what="every soak request to be stored")
    assert hosts.rows(count)[0][0] == n
    assert hosts.rows("SELECT count(DISTINCT feature) FROM request_logs WHERE feature LIKE 'soak-%'")[0][0] == n
    assert hosts.rows("SELECT coalesce(sum(events), 0) FROM dropped_events")[0][0] == 0

    # Kill the first host in the middle of traffic: whatever the second served is stored.
    for sim in hosts.sims:
        sim.clear()
    results: dict[str, int] = {}

    def one(i: int) -> None:
        results[f"kill-{i}"] = ask(through, f"kill-{i}")
        if i == 100:
            hosts.kill(0)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(400)))
    assert hosts.procs[0].wait(10) == -signal.SIGKILL
    wait_until(lambda: not live_members(hosts.procs[0].pid), timeout=5, what="the killed host's writer and jobs to die")
    answered = {tag for tag, code in results.items() if code == 200}
    by_second = {text(r) for r in hosts.sims[1].received()} & answered
    assert len(by_second) > 250  # after the kill, all of it
    stored = lambda: {f for (f,) in hosts.rows("SELECT feature FROM request_logs WHERE feature LIKE 'kill-%'")}  # noqa: E731
    wait_until(lambda: by_second <= stored(), timeout=20, what="what the second host served to be stored")
    lost = by_second - stored()
    assert not lost

    # Once every host has stopped and written what it held, the soak's rows are still one per request:
    # a batch stored twice late (a retry after its commit was lost) would show here.
    hosts.stop()
    assert hosts.rows(count)[0][0] == n
