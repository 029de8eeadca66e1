"""`lectr`: administration from the command line."""

from __future__ import annotations

import argparse
import sys

from lectr import keys, storage


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
    for sub in (create, list_, revoke):
        sub.add_argument(
            "--db", default=storage.default_db_path(), help="DuckDB file (default: $LECTR_DB or lectr.duckdb)"
        )

    args = parser.parse_args(argv)
    try:
        if args.action == "create":
            return _create(args.org, args.db)
        if args.action == "list":
            return _list(args.db)
        return _revoke(args.key_id, args.db)
    except storage.StorageError as e:
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
    for key_id, org, created, revoked in storage.list_keys(db):
        state = f"revoked {revoked:%Y-%m-%d %H:%M}" if revoked else "active"
        print(f"{key_id}  {org}  created {created:%Y-%m-%d %H:%M}  {state}")
    return 0


def _revoke(key_id: str, db: str) -> int:
    if storage.revoke_key(db, key_id):
        print(f"Revoked key {key_id}. The proxy stops accepting it within a few seconds.")
        return 0
    print(f"lectr: no active key with id {key_id!r} in {db} ('lectr keys list --db {db}' shows them)", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
