"""`agent/stats.py`: the fixed-bucket histogram the ingress turns into Prometheus metrics."""

from __future__ import annotations

from aomi_runtime.agent.stats import LATENCY_BUCKETS, Histogram


def test_counts_are_cumulative_per_upper_bound_with_the_bound_itself_inside() -> None:
    h = Histogram(bounds=(1.0, 2.0, 5.0))
    for value in (0.5, 1.0, 1.5, 5.0, 7.0):
        h.observe(value)
    # le=1: 0.5 and 1.0; le=2: and 1.5; le=5: and 5.0; 7.0 only in the count (+Inf)
    assert h.snapshot() == {"bounds": [1.0, 2.0, 5.0], "counts": [2, 3, 4], "sum": 15.0, "count": 5}


def test_an_empty_histogram_and_the_default_bounds() -> None:
    h = Histogram()
    assert h.snapshot() == {
        "bounds": list(LATENCY_BUCKETS),
        "counts": [0] * len(LATENCY_BUCKETS),
        "sum": 0.0,
        "count": 0,
    }
    assert list(LATENCY_BUCKETS) == sorted(LATENCY_BUCKETS)


def test_a_snapshot_is_a_copy() -> None:
    h = Histogram(bounds=(1.0,))
    h.observe(0.5)
    taken = h.snapshot()
    h.observe(0.5)
    assert taken["counts"] == [1] and taken["count"] == 1
    assert h.snapshot()["counts"] == [2]
