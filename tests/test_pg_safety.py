"""A PostgreSQL URL's password never shows, and no value a client sends can keep a batch out of the database."""

from __future__ import annotations

import pytest

from lectr.store import StorageError, db_argument, open_store, utc_now
from lectr.store.pg_connection import redacted


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://lectr:s3cret@db.internal:5432/lectr", "postgresql://lectr:***@db.internal:5432/lectr"),
        ("postgresql://lectr:s3?cr#et@db/lectr", "postgresql://lectr:***@db/lectr"),  # libpq reads ? and # as password
        ("postgresql://lectr:a[b@db/lectr", "postgresql://lectr:***@db/lectr"),
        (
            "postgresql://lectr@db/lectr?password=s3cret&sslmode=require",
            "postgresql://lectr:***@db/lectr?sslmode=require",
        ),
        ("postgresql://lectr@db/lectr", "postgresql://lectr@db/lectr"),
        ("postgresql://lectr@db/lectr?sslpassword=s3cret", "postgresql://lectr@db/lectr?sslpassword=***"),
        ("postgresql:///lectr", "postgresql:///lectr"),
    ],
)
def test_a_url_is_shown_without_its_password_however_it_is_written(url, shown):
    assert redacted(url) == shown
    store = open_store(url)
    assert store.display == shown and "s3" not in repr(store) and "s3" not in repr(store.db)
    assert db_argument(store) == '"$LECTR_DB"'  # pasted from a message, a rebuilt URL might not log in


def test_a_url_libpq_cannot_read_is_refused_without_repeating_it():
    with pytest.raises(StorageError, match="percent-encode") as refused:
        open_store("postgresql://lectr:50%off@db/lectr")
    assert "50%off" not in str(refused.value) and "off" not in str(refused.value)


def test_a_nul_a_client_put_in_a_model_name_does_not_keep_the_batch_out(pg_url):
    store = open_store(pg_url)
    rows = [
        {"ts": utc_now(), "request_id": "r1", "org_id": "acme", "model_requested": "gpt-4o\x00", "status_code": 200},
        {"ts": utc_now(), "request_id": "r2", "org_id": "acme", "model_requested": "gpt-4o", "status_code": 200},
    ]
    store.append_request_logs(rows, batch_id="with-a-nul")
    assert store.request_detail("r1")["model_requested"] == "gpt-4o\ufffd"
    assert store.request_detail("r2")["model_requested"] == "gpt-4o"
