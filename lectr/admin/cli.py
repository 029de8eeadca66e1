"""`lectr`: administration from the command line."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from lectr.admin import document_commands, haproxy, job_commands, secretsfile, setup_commands
from lectr.common import rules
from lectr.common.errors import LectrError
from lectr.common.jobsettings import EVERY
from lectr.common.providers import PROVIDERS
from lectr.prices.pricefile import PRICES_FILE
from lectr.prices.sources import PRICES_URL
from lectr.store import collect, default_db_path, is_postgres


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
    rules_parser = commands.add_parser(
        "rules", help="check routing rules; import and export the rules kept in the database (lectr_rules=db)"
    )
    rules_commands = rules_parser.add_subparsers(dest="action", required=True)
    rules_check = rules_commands.add_parser(
        "check", help="validate a rules file as the proxy would and list its rules, enabled or not"
    )
    rules_check.add_argument(
        "--file",
        default=os.environ.get("LECTR_RULES") or rules.RULES_FILE,
        help="rules file, or db: the rules kept in the database (--db) (default: $LECTR_RULES or rules.yaml)",
    )
    experiments_parser = commands.add_parser(
        "experiments", help="import and export the shadow experiments kept in the database (lectr_experiments=db)"
    )
    experiments_commands = experiments_parser.add_subparsers(dest="action", required=True)
    moves = []  # import and export of each document
    for name, documents in (("rules", rules_commands), ("experiments", experiments_commands)):
        into = documents.add_parser(
            "import",
            help=f"store a {name} file in the database, comments and all, after checking it as the proxy would; "
            f"every proxy with lectr_{name}=db applies it within a second. Prints the new version",
        )
        into.add_argument("file", metavar="FILE", help=f"the {name} file (YAML)")
        out = documents.add_parser(
            "export", help=f"write the {name} kept in the database to FILE, as imported or as last saved"
        )
        out.add_argument("file", metavar="FILE", nargs="?", help="where to write them (default: stdout)")
        moves += [into, out]
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
        "--collect",
        metavar="GLOB",
        default="",
        help="the DuckDB workers' files, e.g. 'lectr-workers/worker-*.duckdb'; none with a postgresql:// --db",
    )
    jobs.add_argument("--collect-every", metavar="SECONDS", type=float, default=5, help="default 5")
    for job, every in EVERY.items():
        jobs.add_argument(
            f"--{job}-every", metavar="SECONDS", type=float, default=every, help=f"0: never; default {every}"
        )
    for sub in (recommend, jobs):
        sub.add_argument("--prices-file", default=PRICES_FILE, help=f"your price file (default: {PRICES_FILE})")
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
        help="fetch genai-prices' newest data into <db>.prices.json (a postgresql:// --db: lectr.prices.json in the "
        "working directory, on each host); a running proxy prices with it within seconds",
    )
    update.add_argument("--url", default=PRICES_URL, help="where to fetch it from (default: genai-prices on GitHub)")
    check = prices_commands.add_parser("check", help="validate a price file and list its entries")
    show = prices_commands.add_parser(
        "show", help="the price of PROVIDER's MODEL per million tokens, and where it comes from"
    )
    show.add_argument("provider", metavar="PROVIDER", choices=PROVIDERS, help=", ".join(PROVIDERS))
    show.add_argument("model", metavar="MODEL")
    for sub in (check, show):
        sub.add_argument("--file", default=PRICES_FILE, help=f"your price file (default: {PRICES_FILE})")
    for sub in (
        create,
        list_,
        revoke,
        rules_check,
        *moves,
        aggregate,
        anomalies,
        recommend,
        collect_,
        jobs,
        update,
        show,
    ):
        sub.add_argument(
            "--db",
            default=default_db_path(),
            help="where Lectr's data is: a DuckDB file or a postgresql:// URL (default: $LECTR_DB or lectr.duckdb); "
            "keep a password in PGPASSWORD or ~/.pgpass rather than on the command line",
        )

    args = parser.parse_args(argv)
    try:
        if args.command == "aggregate":
            return job_commands.aggregate(args.db)
        if args.command == "anomalies":
            return job_commands.anomalies(args.db)
        if args.command == "recommend":
            return job_commands.recommend(args)
        if args.command == "collect":
            if is_postgres(args.db):
                print(
                    "lectr: collect copies DuckDB workers' files; on PostgreSQL every proxy writes to it",
                    file=sys.stderr,
                )
                return 2
            logging.basicConfig(level=logging.INFO, format="%(message)s")
            print(f"Copied {collect.collect(args.db, args.sources)} rows into {args.db}.")
            return 0
        if args.command == "jobs":
            return job_commands.jobs(args)
        if args.command == "haproxy-config":
            print(haproxy.config(args.port, args.backends), end="")
            return 0
        if args.command == "prices":
            return setup_commands.prices(args)
        if args.command in ("rules", "experiments") and args.action in ("import", "export"):
            move = document_commands.import_document if args.action == "import" else document_commands.export_document
            return move(args.command, args.file, args.db)
        if args.command == "rules":
            return setup_commands.rules_check(args.file, args.db)
        if args.command == "secrets" and args.action == "set":
            return setup_commands.secrets_set(args.provider, args.org, args.file)
        if args.command == "secrets":
            return setup_commands.secrets_list(args.file)
        if args.action == "create":
            return setup_commands.keys_create(args.org, args.db)
        if args.action == "list":
            return setup_commands.keys_list(args.db)
        return setup_commands.keys_revoke(args.key_id, args.db)
    except (LectrError, ValueError) as e:  # every Lectr error's message says how to fix its cause
        print(f"lectr: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
