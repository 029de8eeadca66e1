"""The copy of the last keys and rules read from PostgreSQL (lectr/proxy/lastgood.py): kept owner-only,
used only while fresh, and removed rather than left stale when it cannot be written anew."""

from __future__ import annotations

import json
import os
import stat
import time

from lectr.proxy import lastgood


def test_a_copy_is_kept_owner_only_and_recalled_while_fresh(tmp_path):
    file = lastgood.cache_file(str(tmp_path), "postgresql://lectr:***@db/lectr", "keys")
    assert "db" not in file.name and file.name.startswith("keys-")  # named without the URL
    lastgood.remember(file, [["k1", "acme", "hash"]])
    assert stat.S_IMODE(os.stat(file).st_mode) == 0o600 and stat.S_IMODE(os.stat(file.parent).st_mode) == 0o700
    assert lastgood.recall(file) == {"value": [["k1", "acme", "hash"]]}
    lastgood.remember(file, None)  # "no document": kept as such, not as "no copy"
    assert lastgood.recall(file) == {"value": None}


def test_a_copy_older_than_a_day_is_not_used(tmp_path):
    file = tmp_path / "keys-x.json"
    file.write_text(json.dumps({"written_at": time.time() - lastgood.MAX_AGE - 1, "value": [["k1", "acme", "h"]]}))
    assert lastgood.recall(file) is None
    file.write_text("not json")
    assert lastgood.recall(file) is None


def test_a_copy_that_cannot_be_written_anew_is_removed_not_left_with_revoked_keys(tmp_path):
    file = lastgood.cache_file(str(tmp_path), "db", "keys")
    lastgood.remember(file, [["revoked", "acme", "h"]])
    lastgood.remember(file, [["k", "acme", object()]])  # cannot be written (here: not JSON)
    assert not file.exists() and list(file.parent.iterdir()) == []  # nor any temporary file
