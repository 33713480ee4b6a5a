"""Write-path benchmark: commits of many sessions at once, each its own transaction against group commit, one run.

    .venv/bin/python -m bench.writes [--url postgresql://postgres@127.0.0.1:5432/db] [--writers 1,8,32,100]

Without Ray: `SqlHistory` as the history store actor holds it, on SQLite in a temporary directory (or `--url`).
Each writer is a session flushing turn-sized commits (its record, a message, an event) one after another, as a
session actor does. Prints commits per second, commit latency p50 and p99, and commits per transaction.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable

from aomi_runtime.agent.records import Commit, Event, Message, SessionRecord
from aomi_runtime.backends.history import GroupCommit, SqlHistory

Write = Callable[[str, Commit], Awaitable[None]]


def turn_commit(session_id: str, n: int) -> Commit:
    return Commit(
        record=SessionRecord(session_id=session_id, app="bench", last_seq=n + 1),
        messages=[Message(id=n, sender="agent", content="x" * 200)],
        events=[Event(seq=n + 1, data={"type": "message", "session_id": session_id, "n": n})],
    )


async def run(write: Write, writers: int, commits: int) -> tuple[float, list[float]]:
    """`writers` sessions committing `commits` times each, all at once: commits/s and every commit's seconds."""
    latencies: list[float] = []

    async def session() -> None:
        session_id = f"bench-{uuid.uuid4()}"
        for n in range(commits):
            started = time.perf_counter()
            await write("bench", turn_commit(session_id, n))
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(session() for _ in range(writers)))
    return len(latencies) / (time.perf_counter() - started), sorted(latencies)


async def main(url: str, levels: list[int]) -> None:
    history = SqlHistory.from_url(url)
    await history.setup()
    batches: list[int] = []
    group = GroupCommit(history, on_batch=batches.append)
    print(f"{url.split(':', 1)[0]}; load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    print(
        "| writers | one transaction each: commits/s, p50 / p99 ms "
        "| group commit: commits/s, p50 / p99 ms | commits per transaction |"
    )
    print("|---|---|---|---|")
    try:
        for writers in levels:
            commits = max(5, 400 // writers)
            alone, alone_ms = await run(history.commit, writers, commits)
            batches.clear()
            grouped, grouped_ms = await run(group.commit, writers, commits)
            print(
                f"| {writers} | {alone:.0f}, {_ms(alone_ms, 0.5)} / {_ms(alone_ms, 0.99)} "
                f"| {grouped:.0f}, {_ms(grouped_ms, 0.5)} / {_ms(grouped_ms, 0.99)} "
                f"| {statistics.mean(batches):.1f} |"
            )
    finally:
        await history.close()
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def _ms(latencies: list[float], q: float) -> str:
    return f"{latencies[min(len(latencies) - 1, int(len(latencies) * q))] * 1000:.1f}"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a history database URL (default: SQLite in a temporary directory)")
    parser.add_argument("--writers", default="1,8,32,100", help="sessions writing at once, comma-separated")
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="aomi-writes-")
    try:
        asyncio.run(main(args.url or f"sqlite:///{folder}/writes.db", [int(w) for w in args.writers.split(",")]))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
