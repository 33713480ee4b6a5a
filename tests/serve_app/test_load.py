"""A small run of `bench/load.py` on the shared runtime: its invariants asserted, never its timings."""

from __future__ import annotations

from bench.load import Load, verify


async def test_many_sessions_and_clients_lose_nothing_and_subscribers_miss_nothing(
    runtime_url: str, runtime_settings: object
) -> None:
    # 30 s a request or turn (they take well under one): a stuck one fails named within pytest's 300 s, where the
    # bench's 120 s let two of them in one client's sequence end as a bare timeout (seen twice, not explained).
    load = Load(runtime_url, sessions=20, turns=5, clients=16, streamed=0.25, timeout=30.0)
    results = await load.run()
    assert results.failures == []  # each names its request, or the session whose turn or stream never ended
    assert results.turns == 20 * 5 and len(results.subscribers) == 5
    checks = await verify(runtime_settings.database_url, load, results)  # type: ignore[attr-defined]
    failed = {name: detail for name, (held, detail) in checks.items() if not held}
    assert failed == {}
