"""`lectr keys`, `secrets`, `rules check` and `prices`: the commands that set a proxy up.

Each prints what it did and how to go on, and returns the exit status; `lectr.admin.cli`
parses the arguments and turns Lectr's errors into one line on stderr.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys

from lectr.admin import document_commands, secretsfile
from lectr.common import keys, rules
from lectr.store import db_argument, is_postgres, open_store


def keys_create(org: str, db: str) -> int:
    org = org.strip()
    if not org:
        print("lectr: ORG must not be empty", file=sys.stderr)
        return 2
    new_key = keys.generate_key()
    store = open_store(db)
    store.insert_key(org, new_key)
    print(f"Created key {new_key.key_id} for org {org!r} in {store.display}.")
    print("Send it as the X-Lectr-Key header. It is shown only this once; Lectr stores only its hash.")
    print(new_key.key)
    return 0


def keys_list(db: str) -> int:
    store = open_store(db)
    found = store.list_keys()
    if not found:
        # On stderr: stdout is the table alone, empty when there is no key (scripts/lib.sh relies on it).
        print(
            f"No org keys in {store.display}. Create one with: lectr keys create ORG --db {db_argument(store)}",
            file=sys.stderr,
        )
        return 0
    rows = [
        (key_id, org, f"{created:%Y-%m-%d %H:%M}", f"revoked {revoked:%Y-%m-%d %H:%M}" if revoked else "active")
        for key_id, org, created, revoked in found
    ]
    print(table(("KEY ID", "ORG", "CREATED (UTC)", "STATE"), rows), end="")
    return 0


def table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """Columns padded to their widest cell, two spaces apart; the last column unpadded."""
    widths = [max(len(str(row[i])) for row in (header, *rows)) for i in range(len(header) - 1)]
    return "".join(
        "  ".join([*(str(cell).ljust(w) for cell, w in zip(row, widths)), str(row[-1])]) + "\n"
        for row in (header, *rows)
    )


def keys_revoke(key_id: str, db: str) -> int:
    store = open_store(db)
    if store.revoke_key(key_id):
        print(f"Revoked key {key_id}. The proxy stops accepting it within a second.")
        return 0
    where = store.display
    print(
        f"lectr: no active key with id {key_id!r} in {where} ('lectr keys list --db {db_argument(store)}' shows them)",
        file=sys.stderr,
    )
    return 1


def secrets_set(provider: str, org: str | None, path: str) -> int:
    if sys.stdin.isatty():
        api_key = getpass.getpass(f"{provider} API key (not shown): ")
    else:
        api_key = sys.stdin.read()
    secretsfile.set_key(path, provider, api_key, org)
    scope = f"org {org!r}" if org else "every org"
    print(f"Stored the {provider} key for {scope} in {path} (owner-only). A running proxy reloads it within a second.")
    return 0


def secrets_list(path: str) -> int:
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


def rules_check(path: str, db: str) -> int:
    """The rules file at `path`, or (path IN_DB) the rules document in the store at `db`."""
    if path == rules.IN_DB:
        found = document_commands.stored("rules", db)
        if found is None:
            return 1
        text, path, _ = found
    elif not os.path.exists(path):
        print(
            f"lectr: no rules file at {path}: every request passes through unchanged. "
            f"Start from the examples: cp rules.example.yaml {path}",
            file=sys.stderr,
        )
        return 1
    else:
        text = rules.read_rules_text(path)
    ruleset = rules.parse_rules(text, path)  # RuleError (a ValueError) names the rule and the problem
    for warning in ruleset.warnings:
        print(f"lectr: warning: {warning}", file=sys.stderr)
    if ruleset.rules:
        rows = [(str(r.priority), "on" if r.enabled else "off", r.id, r.name) for r in ruleset.rules]
        print(table(("PRIORITY", "ENABLED", "ID", "NAME"), rows), end="")
    print(f"{path}: {rules.summary(ruleset)}")
    return 0


def prices(args: argparse.Namespace) -> int:
    # Imported here: genai-prices' data takes a moment to load, and only these commands need it.
    from lectr.common.usage import Usage
    from lectr.prices import pricefile, priceupdate, pricing

    try:
        if args.action == "update":
            done = priceupdate.download(args.url, priceupdate.data_path(args.db))
            print(f"Fetched prices for {done.models} models of {done.providers} providers into {done.path}.")
            if is_postgres(args.db):  # the file is this host's: each host's proxy prices with its own
                print("The file is this host's: run this on each host, in the directory its proxy runs in.")
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
