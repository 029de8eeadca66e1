import duckdb
import pytest

from lectr.admin import cli
from lectr.common.keys import KeyRing, StoredKey, generate_key, hash_key, key_id_of
from lectr.store import StorageError, open_store
from lectr.store.duckdb_connection import DuckSession  # noqa: E402
from lectr.store.migrations import MIGRATIONS, migrate


def test_generated_keys_are_unique_and_only_their_hash_is_kept():
    a, b = generate_key(), generate_key()
    assert a.key != b.key and a.key_id != b.key_id
    assert a.key.startswith(f"lk_{a.key_id}_")
    assert a.key_hash == hash_key(a.key) and a.key not in a.key_hash
    assert key_id_of(a.key) == a.key_id
    assert key_id_of("sk-not-ours") is None


def test_keyring_checks_the_whole_key():
    k = generate_key()
    ring = KeyRing([StoredKey(k.key_id, "acme", k.key_hash)])
    assert ring.org_for(k.key) == "acme"
    assert ring.org_for(k.key[:-1] + ("A" if k.key[-1] != "A" else "B")) is None  # right id, wrong secret
    assert ring.org_for(generate_key().key) is None
    assert ring.org_for("") is None and ring.org_for(None) is None


def test_migrations_apply_once(tmp_path):
    con = duckdb.connect(str(tmp_path / "m.duckdb"))
    assert migrate(DuckSession(con)) == [m.__name__ for m in MIGRATIONS]
    assert migrate(DuckSession(con)) == []
    columns = [
        r[0]
        for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name='org_keys'"
        ).fetchall()
    ]
    assert columns == ["key_id", "org_id", "key_hash", "created_at", "revoked_at"]


def test_cli_creates_lists_and_revokes_keys(tmp_path, capsys):
    db = str(tmp_path / "lectr.duckdb")
    assert cli.main(["keys", "create", "acme", "--db", db]) == 0
    key = capsys.readouterr().out.strip().splitlines()[-1]
    assert key.startswith("lk_")
    stored = open_store(db).active_keys()
    assert [(s.org_id, s.key_hash) for s in stored] == [("acme", hash_key(key))]
    assert key.encode() not in (tmp_path / "lectr.duckdb").read_bytes()

    assert cli.main(["keys", "list", "--db", db]) == 0
    listing = capsys.readouterr().out
    assert key_id_of(key) in listing and "acme" in listing and "active" in listing and key not in listing

    assert cli.main(["keys", "revoke", key_id_of(key), "--db", db]) == 0
    assert open_store(db).active_keys() == []
    assert cli.main(["keys", "revoke", key_id_of(key), "--db", db]) == 1


def test_reading_a_missing_database_says_how_to_create_it(tmp_path):
    with pytest.raises(StorageError, match="lectr keys create"):
        open_store(tmp_path / "nope.duckdb").active_keys()
