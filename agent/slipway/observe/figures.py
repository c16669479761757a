"""One span's request and resource figures as plain data: what a minute of the metrics
store holds and what the metrics history keeps, merged into longer spans and summed up
into the rows the API, the CLI and the console's charts show.

The latency histogram's bucket counts are kept, not quantiles, so that p50 and p99 of
five minutes or an hour are estimated from the merged histogram just as a minute's are;
CPU and memory keep a sum and a count so their means merge exactly.
"""

from __future__ import annotations

from typing import Any

Figures = dict[str, Any]
_SUMS = (
    "requests",
    "2xx",
    "4xx",
    "5xx",
    "latency_sum",
    "cpu_sum",
    "cpu_n",
    "memory_sum",
    "memory_n",
)


def histogram_quantile(q: float, bounds: tuple[float, ...], counts: list[int]) -> float | None:
    """Prometheus's estimate: linear inside the bucket holding rank ``q``; a rank in the
    +Inf bucket gives the highest finite bound. ``counts`` are per bucket, not cumulative."""
    total = sum(counts)
    if not total:
        return None
    rank = q * total
    seen = 0
    for i, count in enumerate(counts):
        if count and seen + count >= rank:
            if i == len(bounds):
                return float(bounds[-1])
            lower = float(bounds[i - 1]) if i else 0.0
            return lower + (bounds[i] - lower) * (rank - seen) / count
        seen += count
    return float(bounds[-1])


def empty(buckets: int) -> Figures:
    """Nothing counted, for ``buckets`` finite bounds (and +Inf)."""
    return {
        "requests": 0,
        "2xx": 0,
        "4xx": 0,
        "5xx": 0,
        "buckets": [0] * (buckets + 1),
        "latency_sum": 0.0,
        "active": None,
        "cpu_sum": 0.0,
        "cpu_n": 0,
        "memory_sum": 0.0,
        "memory_n": 0,
    }


def merge(into: Figures, other: Figures) -> Figures:
    """Add ``other`` to ``into`` (in place, returned). Active instances of a longer span
    are the most seen in any of its parts: a chart of an hour shows the scale-out."""
    for key in _SUMS:
        into[key] += other[key]
    if len(other["buckets"]) == len(into["buckets"]):  # bounds changed: latency left out
        into["buckets"] = [a + b for a, b in zip(into["buckets"], other["buckets"], strict=True)]
    if other["active"] is not None:
        into["active"] = max(into["active"] or 0, other["active"])
    return into


def summarize(start: int, figures: Figures | None, bounds: tuple[float, ...]) -> dict[str, Any]:
    """The row of a span starting at ``start`` (epoch seconds); None: nothing counted.
    Latency quantiles in seconds, CPU and memory as means in %."""
    f = figures or empty(len(bounds))
    return {
        "minute": start,
        "requests": f["requests"],
        "2xx": f["2xx"],
        "4xx": f["4xx"],
        "5xx": f["5xx"],
        "p50": histogram_quantile(0.5, bounds, f["buckets"]),
        "p99": histogram_quantile(0.99, bounds, f["buckets"]),
        "active_instances": f["active"],
        "cpu": f["cpu_sum"] / f["cpu_n"] if f["cpu_n"] else None,
        "memory": f["memory_sum"] / f["memory_n"] if f["memory_n"] else None,
    }
