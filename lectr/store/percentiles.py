"""Exact percentiles of a large column without sorting all of it: the Overview's latency by model.

PostgreSQL's `percentile_cont` sorts every value of a group: over a 30-day request log of a million
rows that takes most of a second on a small machine, where DuckDB takes a few milliseconds. The
same exact answer comes from two passes that only count: the first counts each model's latencies
per narrow bin (about 1% wide: `BIN`), which tells in which bin the values a percentile needs
lie (its rank, as `percentile_cont` computes it); the second reads only the values of those bins,
and the few found are ranked here. Written once, it gives both databases the same numbers.
"""

from __future__ import annotations

import math
from collections import defaultdict

BIN = "CAST(floor(ln(latency_ms + 1) * 100) AS INTEGER)"  # ~1% wide
# The latencies that have a bin: none, negative, infinite or NaN ones (no Lectr row has them; an imported
# one might) would break the expression; both databases order NaN above every number.
TIMED = "latency_ms BETWEEN 0 AND 1e12"


def ranks(n: int, p: float) -> tuple[int, int, float]:
    """The two 0-based ranks `percentile_cont(p)` interpolates between among n sorted values, and the weight."""
    position = (n - 1) * p
    low = math.floor(position)
    return low, min(low + 1, n - 1), position - low


def needed_bins(counts: dict[str, list[tuple[int, int]]], ps: tuple[float, ...]) -> dict[str, dict[int, int]]:
    """Per model, the bins holding the ranks the percentiles need, each with the rank of its first value.

    `counts`: per model, (bin, values in it) pairs."""
    needed: dict[str, dict[int, int]] = {}
    for model, bins in counts.items():
        n = sum(c for _, c in bins)
        wanted = {r for p in ps for r in ranks(n, p)[:2]}
        first, found = 0, {}
        for b, c in sorted(bins):
            if any(first <= r < first + c for r in wanted):
                found[b] = first
            first += c
        needed[model] = found
    return needed


def percentiles(
    counts: dict[str, list[tuple[int, int]]], values: list[tuple[str, int, float]], ps: tuple[float, ...]
) -> dict[str, list[float]]:
    """Per model, the percentiles `ps` exactly as `percentile_cont` gives them.

    `values`: (model, bin, value) for every value in the bins `needed_bins` named (others are ignored)."""
    needed = needed_bins(counts, ps)
    in_bins: dict[tuple[str, int], list[float]] = defaultdict(list)
    for model, b, value in values:
        if b in needed.get(model, {}):
            in_bins[model, b].append(value)
    result = {}
    for model, bins in counts.items():
        n = sum(c for _, c in bins)
        ranked = {}
        for b, first in needed[model].items():
            for i, value in enumerate(sorted(in_bins[model, b])):
                ranked[first + i] = value
        out = []
        for p in ps:
            low, high, weight = ranks(n, p)
            out.append(ranked[low] + weight * (ranked[high] - ranked[low]))
        result[model] = out
    return result
