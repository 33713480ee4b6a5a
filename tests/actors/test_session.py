"""The session actor's own figures: what it reports to the directory's memory budget."""

from __future__ import annotations

import os

from aomi_runtime.actors.session import private_bytes


def test_private_memory_leaves_out_the_pages_shared_with_other_processes() -> None:
    # Every Ray worker maps the same libraries (some 45 MB, held once by the node): counted per session, they
    # would fill the budget at a fraction of the sessions it can hold.
    page = os.sysconf("SC_PAGE_SIZE")
    with open("/proc/self/statm") as statm:
        resident, shared = (int(n) * page for n in statm.read().split()[1:3])
    assert 0 < private_bytes() < resident
    assert abs(private_bytes() - (resident - shared)) < 16 << 20
