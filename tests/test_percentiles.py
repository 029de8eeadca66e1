"""The Overview's latency by model (lectr/store/percentiles.py) is exactly DuckDB's own percentile_cont."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from lectr.store import open_store, utc_now
from lectr.store.duckdb_connection import connect
from lectr.store.percentiles import percentiles, ranks


def test_ranks_are_those_percentile_cont_interpolates_between():
    assert ranks(1, 0.5) == (0, 0, 0.0)
    assert ranks(2, 0.5) == (0, 1, 0.5)
    assert ranks(101, 0.95) == (95, 96, pytest.approx(0.0))
    assert ranks(10, 0.95) == (8, 9, pytest.approx(0.55))


def test_values_outside_the_needed_bins_are_not_needed():
    counts = {"m": [(0, 2), (5, 1), (9, 2)]}  # ranks 0-1 in bin 0, 2 in bin 5, 3-4 in bin 9
    values = [("m", 5, 7.0), ("m", 9, 20.0), ("m", 9, 10.0)]  # bin 0's values never read
    assert percentiles(counts, values, (0.5, 1.0)) == {"m": [7.0, 20.0]}


@pytest.mark.parametrize("seed", range(6))
def test_latency_by_model_is_exactly_percentile_cont(tmp_path, seed):
    rng = random.Random(seed)
    now = utc_now()
    draws = {
        "lognormal": lambda: rng.lognormvariate(6, 1),
        "ties": lambda: float(rng.choice([100, 100, 250, 250, 250, 4000])),
        "one": lambda: 42.0,
        "tiny": lambda: rng.random(),  # below 1 ms: one bin holds them all
        "bimodal": lambda: rng.choice([rng.gauss(80, 5), rng.gauss(9000, 300)]),
    }
    rows = []
    for model, draw in draws.items():
        for i in range(1 if model == "one" else rng.randint(2, 3000)):
            rows.append(
                {
                    "ts": now - timedelta(minutes=rng.randint(0, 600)),
                    "request_id": f"{model}-{i}",
                    "org_id": rng.choice(["acme", "globex"]),
                    "model_actual": model,
                    "latency_ms": None if rng.random() < 0.05 and model != "one" else abs(draw()),
                    "error_category": "upstream_5xx" if rng.random() < 0.1 else None,
                }
            )
    store = open_store(tmp_path / "lectr.duckdb")
    store.append_request_logs(rows)
    since = now - timedelta(hours=5)
    for org in (None, "acme"):
        found = store.latency_by_model(org, since)
        where = "ts >= ? AND model_actual IS NOT NULL" + (" AND org_id = 'acme'" if org else "")
        with connect(store.path, read_only=True) as con:
            expected = con.execute(
                f"""SELECT model_actual, count(*), count(error_category), quantile_cont(latency_ms, 0.5),
                           quantile_cont(latency_ms, 0.95)
                    FROM request_logs WHERE {where} GROUP BY 1 ORDER BY 2 DESC, 1""",
                [since],
            ).fetchall()
        assert len(found) == len(expected) > 0
        for got, (model, n, errors, p50, p95) in zip(found.itertuples(index=False), expected):
            assert (got.model_actual, got.requests, got.errors) == (model, n, errors)
            assert got.latency_p50_ms == pytest.approx(p50, rel=1e-12) and got.latency_p95_ms == pytest.approx(
                p95, rel=1e-12
            )
