"""The rules and experiments kept in the store (`lectr_rules=db`): what RouteFiles and Shadow load from
a DuckDB file's documents in mitmproxy's test context, and real proxies on one PostgreSQL that route
by a rule saved there, without a restart (the issue's "within a second" is measured, not asserted:
the test fails past 10 s and prints the time it took, which `pytest -s` shows)."""

from __future__ import annotations

import logging
import time

from mitmproxy.test import taddons

from lectr.common.experiments import experiments_path
from lectr.common.keys import NewKey, hash_key, key_id_of
from lectr.proxy.addons.routefiles import RouteFiles
from lectr.proxy.addons.shadow import Shadow
from lectr.store import open_store

from helpers import hold_database, send_chats, start_lectr, stop, wait_until

TO_MINI = (
    "# kept in the database\n"
    "rules:\n  - {name: to mini, priority: 1, match: {model: gpt-4o}, target: {model: gpt-4o-mini}}\n"
)
TWO_RULES = TO_MINI + "  - {name: digest, priority: 2, match: {feature: digest}, target: {model: gpt-4.1-nano}}\n"
EXPERIMENTS = "experiments:\n  - {name: triage, match: {feature: triage}, candidate: {model: gpt-4o-mini}}\n"


def ids(files: RouteFiles) -> list[str]:
    return [r.id for r in files.rules.value.rules]


def in_db(tctx, db: str, *addons) -> None:
    """lectr_rules=db on `addons`, with lectr_db (Auth's option, declared here without Auth) naming `db`."""
    tctx.options.add_option("lectr_db", str, db, "the store")
    tctx.options.add_option("lectr_keys_db", str, "", "the keys' store: lectr_db when empty")
    for addon in addons:
        tctx.configure(addon, lectr_rules="db")


def test_experiments_follow_the_rules_into_the_database_unless_named():
    assert experiments_path("db") == "db"
    assert experiments_path("db", "/etc/lectr/experiments.yaml") == "/etc/lectr/experiments.yaml"
    assert experiments_path("/etc/lectr/rules.yaml", "db") == "db"
    assert experiments_path("/etc/lectr/rules.yaml") == "/etc/lectr/experiments.yaml"


def test_the_rules_document_is_loaded_when_saved_and_a_bad_one_keeps_the_last_good_rules(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="lectr.proxy.addons.routefiles")
    db = str(tmp_path / "lectr.duckdb")
    store = open_store(db)
    store.save_document("experiments", "experiments: []\n", None)  # the database exists, without rules
    files = RouteFiles()
    with taddons.context(files) as tctx:
        in_db(tctx, db, files)
        assert ids(files) == []
        assert f"No rules document in {db} yet: every request passes through unrouted" in caplog.text

        store.save_document("rules", TO_MINI, None)
        assert files.rules.poll() and ids(files) == ["to-mini"]
        assert not files.rules.poll()  # unchanged: not read again
        assert f"rules loaded from the rules document in {db}: 1 rule, 1 enabled" in caplog.text

        store.save_document("rules", "rules: [\n", None)
        assert not files.rules.poll()
        assert ids(files) == ["to-mini"]
        assert files.rules.error.startswith(f"the rules document in {db}: not valid YAML")
        store.save_document("rules", "rules:\n  - {name: no target, priority: 1}\n", None)
        assert not files.rules.poll() and ids(files) == ["to-mini"]
        assert "rule 'no target'" in files.rules.error

        # An empty document is a wish, not an editor's half-written file: nothing is half-saved in a database.
        store.save_document("rules", "", None)
        assert files.rules.poll() and ids(files) == []
    assert caplog.text.count("No rules document") == 1


def test_duckdb_workers_read_the_rules_document_from_the_keys_store_they_share(tmp_path):
    main, own = str(tmp_path / "lectr.duckdb"), str(tmp_path / "worker-1.duckdb")  # scripts/workers.sh's layout
    open_store(main).save_document("rules", TO_MINI, None)
    open_store(own).append_request_logs([])  # the worker's own file, without rules
    files = RouteFiles()
    with taddons.context(files) as tctx:
        in_db(tctx, own, files)
        assert ids(files) == []
        tctx.options.update(lectr_keys_db=main)
        assert ids(files) == ["to-mini"]


def test_a_database_that_cannot_be_read_keeps_the_rules_and_is_read_again_at_the_next_poll(tmp_path):
    db = str(tmp_path / "lectr.duckdb")
    store = open_store(db)
    store.save_document("rules", TO_MINI, None)
    files = RouteFiles()
    with taddons.context(files) as tctx:
        in_db(tctx, db, files)
        assert ids(files) == ["to-mini"]
        store.save_document("rules", TWO_RULES, None)
        holder = hold_database(db, 60)  # a writer holding the file longer than a read waits (about 2 s)
        try:
            assert not files.rules.poll()
            assert ids(files) == ["to-mini"]
            assert f"cannot open {db}" in files.rules.error
        finally:
            holder.kill()
            holder.wait()
        assert files.rules.poll()  # nothing changed since the failed read: read again all the same
        assert ids(files) == ["to-mini", "digest"] and files.rules.error is None


def test_with_the_rules_in_the_database_the_experiments_are_read_from_there_too(tmp_path):
    db = str(tmp_path / "lectr.duckdb")
    store = open_store(db)
    store.save_document("rules", TO_MINI, None)
    (tmp_path / "experiments.yaml").write_text("experiments: [{name: file, candidate: {model: x}}]\n")
    files = RouteFiles()
    shadow = Shadow(files)
    with taddons.context(files, shadow) as tctx:
        tctx.configure(files, lectr_secrets=str(tmp_path / "secrets.yaml"))
        in_db(tctx, db, files, shadow)
        assert shadow.experiments.path == f"the experiments document in {db}"
        assert shadow.experiments.value.experiments == ()
        store.save_document("experiments", EXPERIMENTS, None)
        assert shadow.experiments.poll()
        assert [e.id for e in shadow.experiments.value.running] == ["triage"]
        tctx.configure(shadow, lectr_experiments=str(tmp_path / "experiments.yaml"))  # named: the file
        assert [e.id for e in shadow.experiments.value.experiments] == ["file"]


def test_every_proxy_on_one_postgresql_routes_by_a_rule_saved_there(sim, pg_url, tmp_path):
    store = open_store(pg_url)
    options = {"lectr_db": pg_url, "lectr_rules": "db"}
    proxies = []
    try:
        for name in ("a", "b"):
            proxies.append(start_lectr(tmp_path / name, sim.url, options=options))
        for proxy in proxies:  # its key, made in the workdir's DuckDB file, kept in PostgreSQL instead
            store.insert_key("acme", NewKey(key_id_of(proxy.key), proxy.key, hash_key(proxy.key)))
        wait_until(lambda: all(send_chats(p, "triage", 1) == [200] for p in proxies), timeout=10, what="the keys")
        assert [r["body"]["model"] for r in sim.received()][-2:] == ["gpt-4o", "gpt-4o"]
        for proxy in proxies:
            assert f"No rules document in {store.display} yet" in proxy.log()

        loaded = f"rules loaded from the rules document in {store.display}: 1 rule, 1 enabled"
        saved = time.monotonic()
        store.save_document("rules", TO_MINI, None)
        wait_until(lambda: all(loaded in p.log() for p in proxies), timeout=10, what="both proxies to load the rule")
        print(f"a rule saved in PostgreSQL was loaded by both proxies in {time.monotonic() - saved:.2f}s")
        sim.clear()
        for proxy in proxies:
            assert send_chats(proxy, "triage", 1) == [200]
        assert [r["body"]["model"] for r in sim.received()] == ["gpt-4o-mini", "gpt-4o-mini"]
    finally:
        for proxy in proxies:
            stop(proxy.proc)
