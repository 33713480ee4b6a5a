"""Runs the multi-node tests (`test_multinode.py`) in a child pytest process with Ray clusters of their own,
then checks that they left no process behind. Their own assertion output is shown if they fail."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.cluster.conftest import CHILD_ENV, SQLITE_NOTE, ran_on_sqlite
from tests.helpers import processes_using

CHILD_SECONDS = 600
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(CHILD_ENV in os.environ, reason="this is the child: it runs the tests themselves")
@pytest.mark.timeout(CHILD_SECONDS + 60)
def test_multinode_behaviour_in_a_child_process() -> None:
    root = tempfile.mkdtemp(prefix="aomi-ray-", dir="/tmp")  # short, and seen by CI's leak check
    command = [sys.executable, "-m", "pytest", "tests/cluster/test_multinode.py", "-p", "no:cacheprovider", "-q"]
    child = subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, CHILD_ENV: root},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = child.communicate(timeout=CHILD_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        output, _ = child.communicate()
        output += f"\n(stopped after {CHILD_SECONDS} s)"
    note = Path(root, SQLITE_NOTE)
    if note.exists():  # no PostgreSQL server: said in this run's summary (and, under AOMI_REQUIRE_POSTGRES, failed)
        ran_on_sqlite.extend(note.read_text().splitlines())
    left = processes_using(root)
    for line in left:
        os.kill(int(line.split()[0]), signal.SIGKILL)
    shutil.rmtree(root, ignore_errors=True)
    assert child.returncode == 0, f"the multi-node tests failed (exit {child.returncode}):\n{output}"
    assert "2 passed" in output, output  # none skipped or lost
    assert left == [], "the multi-node tests left processes behind:\n" + "\n".join(left)
