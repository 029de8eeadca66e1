"""`lectr`: administration from the command line."""

from __future__ import annotations

import argparse
import getpass
import glob
import logging
import os
import signal
import sys
import time
from typing import Callable

from lectr.admin import haproxy, secretsfile
from lectr.common import keys, rules
from lectr.common.providers import PROVIDERS
from lectr.jobs import alerts, runs
from lectr.record.writer import PRICES_URL
from lectr.store import collect, storage


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lectr", description="Administer a Lectr proxy.")
    commands = parser.add_subparsers(dest="command", required=True)

    keys_parser = commands.add_parser("keys", help="create, list and revoke org keys (X-Lectr-Key)")
    keys_commands = keys_parser.add_subparsers(dest="action", required=True)
    create = keys_commands.add_parser("create", help="create a key for ORG; the key is printed once, last")
    create.add_argument("org", metavar="ORG", help="the organisation id the key authenticates")
    list_ = keys_commands.add_parser("list", help="list keys (ids and orgs, never the keys)")
    revoke = keys_commands.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id", metavar="KEY_ID")
    secrets_parser = commands.add_parser(
        "secrets", help="set and list the provider keys Lectr uses when a rule switches provider"
    )
    secrets_commands = secrets_parser.add_subparsers(dest="action", required=True)
    secrets_set = secrets_commands.add_parser(
        "set",
        help="store PROVIDER's key, read from stdin (typed without echo on a terminal; never an argument, so it "
        "stays out of shell history); the file is written owner-only (0600)",
    )
    secrets_set.add_argument("provider", metavar="PROVIDER", choices=PROVIDERS, help=", ".join(PROVIDERS))
    secrets_set.add_argument("--org", help="for this org only (default: for every org)")
    secrets_list = secrets_commands.add_parser("list", help="list providers and orgs with keys (masked)")
    for sub in (secrets_set, secrets_list):
        sub.add_argument(
            "--file", default=secretsfile.DEFAULT_PATH, help=f"secrets file (default: {secretsfile.DEFAULT_PATH})"
        )
    rules_parser = commands.add_parser("rules", help="check a routing rules file")
    rules_commands = rules_parser.add_subparsers(dest="action", required=True)
    rules_check = rules_commands.add_parser(
        "check", help="validate a rules file as the proxy would and list its rules, enabled or not"
    )
    rules_check.add_argument(
        "--file",
        default=os.environ.get("LECTR_RULES") or "rules.yaml",
        help="rules file (default: $LECTR_RULES or rules.yaml)",
    )
    aggregate = commands.add_parser("aggregate", help="recompute the dashboard summaries once")
    anomalies = commands.add_parser(
        "anomalies", help="check the last hour against the past week once; mail new anomalies (LECTR_SMTP_*)"
    )
    recommend = commands.add_parser("recommend", help="propose cheaper models per org, feature and model once")
    collect_ = commands.add_parser(
        "collect", help="copy new rows from worker DuckDB files into the main file (--db) once; prints rows copied"
    )
    collect_.add_argument("sources", metavar="SOURCE", nargs="+", help="a worker's DuckDB file (its lectr_db)")
    jobs = commands.add_parser(
        "jobs",
        help="collect worker files into --db every few seconds and run aggregate, anomalies (LECTR_SMTP_*) and "
        "recommend on it, until SIGINT/SIGTERM (then one last collection); what scripts/workers.sh runs",
    )
    jobs.add_argument(
        "--collect", metavar="GLOB", required=True, help="the workers' files, e.g. 'lectr-workers/worker-*.duckdb'"
    )
    jobs.add_argument("--collect-every", metavar="SECONDS", type=float, default=5, help="default 5")
    for job, every in runs.EVERY.items():
        jobs.add_argument(
            f"--{job}-every", metavar="SECONDS", type=float, default=every, help=f"0: never; default {every}"
        )
    for sub in (recommend, jobs):
        sub.add_argument("--prices-file", default="prices.yaml", help="your price file (default: prices.yaml)")
        sub.add_argument(
            "--tiers", default="", help="a tiers file extending lectr/prices/tiers.yaml (default: $LECTR_TIERS)"
        )
    config = commands.add_parser("haproxy-config", help="print the HAProxy configuration for Lectr workers")
    config.add_argument("--port", type=int, required=True, help="where HAProxy listens (127.0.0.1)")
    config.add_argument(
        "--backends",
        type=lambda text: text.split(","),
        required=True,
        help="the workers' addresses, comma-separated: 127.0.0.2:8080,127.0.0.3:8080 (a bare port: on 127.0.0.1)",
    )
    prices = commands.add_parser("prices", help="fetch newer prices, check a price file, show a model's price")
    prices_commands = prices.add_subparsers(dest="action", required=True)
    update = prices_commands.add_parser(
        "update",
        help="fetch genai-prices' newest data into <db>.prices.json; a running proxy prices with it within seconds",
    )
    update.add_argument("--url", default=PRICES_URL, help="where to fetch it from (default: genai-prices on GitHub)")
    check = prices_commands.add_parser("check", help="validate a price file and list its entries")
    show = prices_commands.add_parser(
        "show", help="the price of PROVIDER's MODEL per million tokens, and where it comes from"
    )
    show.add_argument("provider", metavar="PROVIDER", choices=PROVIDERS, help=", ".join(PROVIDERS))
    show.add_argument("model", metavar="MODEL")
    for sub in (check, show):
        sub.add_argument("--file", default="prices.yaml", help="your price file (default: prices.yaml)")
    for sub in (create, list_, revoke, aggregate, anomalies, recommend, collect_, jobs, update, show):
        sub.add_argument(
            "--db", default=storage.default_db_path(), help="DuckDB file (default: $LECTR_DB or lectr.duckdb)"
        )

    args = parser.parse_args(argv)
    try:
        if args.command == "aggregate":
            print(f"Wrote {runs.run_aggregate(args.db)} summary rows to {args.db}.")
            return 0
        if args.command == "anomalies":
            return _anomalies(args.db)
        if args.command == "recommend":
            return _recommend(args)
        if args.command == "collect":
            logging.basicConfig(level=logging.INFO, format="%(message)s")
            print(f"Copied {collect.collect(args.db, args.sources)} rows into {args.db}.")
            return 0
        if args.command == "jobs":
            return _jobs(args)
        if args.command == "haproxy-config":
            print(haproxy.config(args.port, args.backends), end="")
            return 0
        if args.command == "prices":
            return _prices(args)
        if args.command == "rules":
            return _rules_check(args.file)
        if args.command == "secrets" and args.action == "set":
            return _secrets_set(args.provider, args.org, args.file)
        if args.command == "secrets":
            return _secrets_list(args.file)
        if args.action == "create":
            return _create(args.org, args.db)
        if args.action == "list":
            return _list(args.db)
        return _revoke(args.key_id, args.db)
    except (storage.StorageError, secretsfile.SecretsFileError, ValueError) as e:  # TiersError, PriceFileError
        print(f"lectr: {e}", file=sys.stderr)
        return 1


def _create(org: str, db: str) -> int:
    org = org.strip()
    if not org:
        print("lectr: ORG must not be empty", file=sys.stderr)
        return 2
    new_key = keys.generate_key()
    storage.insert_key(db, org, new_key)
    print(f"Created key {new_key.key_id} for org {org!r} in {db}.")
    print("Send it as the X-Lectr-Key header. It is shown only this once; Lectr stores only its hash.")
    print(new_key.key)
    return 0


def _list(db: str) -> int:
    found = storage.list_keys(db)
    if not found:
        # On stderr: stdout is the table alone, empty when there is no key (scripts/lib.sh relies on it).
        print(f"No org keys in {db}. Create one with: lectr keys create ORG --db {db}", file=sys.stderr)
        return 0
    rows = [
        (key_id, org, f"{created:%Y-%m-%d %H:%M}", f"revoked {revoked:%Y-%m-%d %H:%M}" if revoked else "active")
        for key_id, org, created, revoked in found
    ]
    print(_table(("KEY ID", "ORG", "CREATED (UTC)", "STATE"), rows), end="")
    return 0


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """Columns padded to their widest cell, two spaces apart; the last column unpadded."""
    widths = [max(len(str(row[i])) for row in (header, *rows)) for i in range(len(header) - 1)]
    return "".join(
        "  ".join([*(str(cell).ljust(w) for cell, w in zip(row, widths)), str(row[-1])]) + "\n"
        for row in (header, *rows)
    )


def _revoke(key_id: str, db: str) -> int:
    if storage.revoke_key(db, key_id):
        print(f"Revoked key {key_id}. The proxy stops accepting it within a few seconds.")
        return 0
    print(f"lectr: no active key with id {key_id!r} in {db} ('lectr keys list --db {db}' shows them)", file=sys.stderr)
    return 1


def _secrets_set(provider: str, org: str | None, path: str) -> int:
    if sys.stdin.isatty():
        api_key = getpass.getpass(f"{provider} API key (not shown): ")
    else:
        api_key = sys.stdin.read()
    secretsfile.set_key(path, provider, api_key, org)
    scope = f"org {org!r}" if org else "every org"
    print(f"Stored the {provider} key for {scope} in {path} (owner-only). A running proxy reloads it within a second.")
    return 0


def _secrets_list(path: str) -> int:
    found = secretsfile.entries(path)
    for entry in found:
        print(f"{entry.provider}  {entry.org or '(every org)'}  {entry.masked_key}")
    if not found:
        file = "" if path == secretsfile.DEFAULT_PATH else f" --file {path}"
        print(
            f"No provider keys in {path} (Lectr needs its own only for a rule that switches provider). "
            f"Add one with: lectr secrets set PROVIDER [--org ORG]{file} (it reads the key from stdin), "
            "or set LECTR_<PROVIDER>_API_KEY in the proxy's environment.",
            file=sys.stderr,
        )
    if secretsfile.readable_by_others(path):
        print(f"lectr: others can read {path}: chmod 600 {path}", file=sys.stderr)
    return 0


def _rules_check(path: str) -> int:
    if not os.path.exists(path):
        print(
            f"lectr: no rules file at {path}: every request passes through unchanged. "
            f"Start from the examples: cp rules.example.yaml {path}",
            file=sys.stderr,
        )
        return 1
    ruleset = rules.load_rules_file(path)  # RuleError (a ValueError) names the rule and the problem
    for warning in ruleset.warnings:
        print(f"lectr: warning: {warning}", file=sys.stderr)
    if ruleset.rules:
        rows = [(str(r.priority), "on" if r.enabled else "off", r.id, r.name) for r in ruleset.rules]
        print(_table(("PRIORITY", "ENABLED", "ID", "NAME"), rows), end="")
    print(f"{path}: {rules.summary(ruleset)}")
    return 0


def _prices(args: argparse.Namespace) -> int:
    # Imported here: genai-prices' data takes a moment to load, and only these commands need it.
    from lectr.common.usage import Usage
    from lectr.prices import pricefile, priceupdate, pricing

    try:
        if args.action == "update":
            done = priceupdate.download(args.url, priceupdate.data_path(args.db))
            print(f"Fetched prices for {done.models} models of {done.providers} providers into {done.path}.")
            print("A running proxy prices with them within a few seconds; rows priced by them say 'updated'.")
            return 0
        user = pricefile.load_price_file(args.file) if os.path.exists(args.file) else pricefile.PriceList()
        if args.action == "check":
            for e in user.entries:
                since = f" from {e.start}" if e.start else ""
                cached = "" if e.cached_input is None else f", cached input ${e.cached_input:g}"
                print(f"#{e.index} {e.provider} {e.model}: input ${e.input:g}{cached}, output ${e.output:g}{since}")
            print(f"{args.file}: {len(user.entries)} prices, valid.")
            return 0
        data = priceupdate.data_path(args.db)
        pricing.use(pricing.load_data_file(data) if os.path.exists(data) else None, user)
    except (priceupdate.PriceUpdateError, pricefile.PriceFileError, ValueError, OSError) as e:
        print(f"lectr: {e}", file=sys.stderr)
        return 1
    million = 1_000_000
    rates = [pricing.price(args.provider, args.model, u) for u in (Usage(million, 0), Usage(million, 0, million))]
    output = pricing.price(args.provider, args.model, Usage(0, million))
    if rates[0] is None or output is None:
        print(
            f"lectr: no price for {args.provider} {args.model}: its rows get no cost; add it to {args.file}",
            file=sys.stderr,
        )
        return 1
    print(
        f"{args.provider} {args.model}: ${rates[0].usd:g} input, ${rates[1].usd:g} cached input, "
        f"${output.usd:g} output per million tokens (from {rates[0].source})"
    )
    return 0


def _anomalies(db: str) -> int:
    smtp = alerts.env_settings()
    run = runs.run_anomalies(db, smtp)
    for f in run.new + run.ongoing:
        state = "new" if f in run.new else "ongoing"
        scope = f.org_id + (f"/{f.feature}" if f.feature else "")
        usual = f"usual {f.expected:.4g}, z={f.score:.1f}"
        print(f"{state:8} {f.severity:8} {scope}: {f.metric} {f.observed:.4g} ({usual})")
    print(f"{len(run.new)} new, {len(run.ongoing)} ongoing, {run.resolved} resolved.")
    if run.new and not smtp.enabled:
        print("No email sent: set LECTR_SMTP_HOST and LECTR_SMTP_TO to be alerted.")
    if run.mail_error:
        print(f"lectr: the alert email failed: {run.mail_error}", file=sys.stderr)
        return 1
    return 0


def _recommend(args: argparse.Namespace) -> int:
    db = args.db
    found = runs.run_recommend(db, prices_file=args.prices_file, tiers=args.tiers)
    for r in found:
        print(
            f"{r.confidence:6} {r.org_id}/{r.feature or '(untagged)'}: {r.current_model} -> {r.suggested_model}, "
            f"saves ~${r.monthly_saving_usd:,.2f}/month ({r.reason})"
        )
    print(f"{len(found)} recommendations written to {db}.")
    return 0


def _jobs(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    db = args.db
    smtp = alerts.env_settings()
    scheduled = [
        (args.aggregate_every, "aggregate", lambda: f"{runs.run_aggregate(db)} summary rows"),
        (args.anomalies_every, "anomalies", lambda: f"{len(runs.run_anomalies(db, smtp).new)} new anomalies"),
        (
            args.recommend_every,
            "recommend",
            lambda: f"{len(runs.run_recommend(db, prices_file=args.prices_file, tiers=args.tiers))} recommendations",
        ),
    ]
    stopping: list[int] = []  # a flag the signal handler can set without taking a lock
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _: stopping.append(signum))
    start = time.monotonic()
    due = {name: start + every for every, name, _ in scheduled if every > 0}  # first runs after one interval
    due["collect"] = start
    logging.info("collecting %s into %s every %g s", args.collect, db, args.collect_every)
    while True:
        if stopping or time.monotonic() >= due["collect"]:
            _turn("collect", lambda: _collect(db, args.collect))
            due["collect"] = time.monotonic() + args.collect_every
        if stopping:
            logging.info("stopped; the last collection is in %s", db)
            return 0
        for every, name, job in scheduled:
            if name in due and time.monotonic() >= due[name]:
                _turn(name, job)
                due[name] = time.monotonic() + every
        while not stopping and time.monotonic() < min(due.values()):
            time.sleep(0.1)


def _collect(db: str, pattern: str) -> str:
    copied = collect.collect(db, sorted(glob.glob(pattern)))
    return f"{copied} rows copied" if copied else ""  # an idle collection says nothing


def _turn(name: str, job: Callable[[], str]) -> None:
    try:
        done = job()
    except Exception:  # the next turn may succeed (a locked file, a mail server down)
        logging.exception("%s failed; trying again at its next turn", name)
        return
    if done:
        logging.info("%s: %s", name, done)


if __name__ == "__main__":
    sys.exit(main())
