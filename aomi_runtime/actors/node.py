"""The Ray settings a node holding many idle session actors runs with, for `launch`, `ray start` and the tests.

Each session actor is a process, and an idle one still takes CPU: ~3.4 ms a second on its main thread
(`bench/idle.py`), 7-11 ms in all its threads (`bench/dense.py`). Most of the main thread's is the core worker's
check for signals, a 10 ms timer that Ray 2.60 does not let anyone change (100 wake-ups a second, each taking the
GIL); the rest is Ray's gRPC polling and reporting. What can be cut without losing anything the runtime uses is
cut here.
"""

from __future__ import annotations

from collections.abc import MutableMapping

# Ray times every handler of its internal event loops (a few clock reads and a locked map update each), for
# its debug_state.txt dumps and `ray_operation_*` metrics, which only help debug Ray itself. Off, an idle
# actor wakes as often but each wake costs less: ~19% less CPU per idle session actor (bench/README.md).
LEAN_RAY_ENV: dict[str, str] = {"RAY_event_stats": "0"}


def lean_ray_env(environ: MutableMapping[str, str]) -> None:
    """Put the lean settings in `environ` before Ray starts (its processes and workers inherit them), leaving
    any an operator set alone."""
    for name, value in LEAN_RAY_ENV.items():
        environ.setdefault(name, value)
