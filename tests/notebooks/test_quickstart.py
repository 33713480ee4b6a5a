"""`notebooks/quickstart.ipynb`, run top to bottom in a fresh Jupyter kernel, against a runtime it starts."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.helpers import processes_using

NOTEBOOK = Path(__file__).parents[2] / "notebooks" / "quickstart.ipynb"


def outputs(cell: nbformat.NotebookNode) -> str:
    """Everything a cell showed, as text: streams, results and displays (text and HTML)."""
    parts = []
    for out in cell.get("outputs", []):
        parts.append(out.get("text", ""))
        for kind in ("text/plain", "text/html"):
            parts.append(out.get("data", {}).get(kind, ""))
    return "\n".join(parts)


def test_the_committed_notebook_has_no_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


def test_the_quickstart_runs_top_to_bottom(tmp_path: Path, ray_tmp: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The kernel inherits this environment: its own Ray temp dir, no URL (so it starts its own runtime).
    monkeypatch.setenv("RAY_TMPDIR", ray_tmp)
    monkeypatch.delenv("AOMI_URL", raising=False)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()

    code = [c for c in notebook.cells if c.cell_type == "code"]
    started, chat, tool, table, plot, events, tidy = code
    assert "http://127.0.0.1:" in outputs(started) and "['default']" in outputs(started)
    assert "1 2 3 4 5" in outputs(chat)
    shown = outputs(tool)
    assert "The long_task tool returned" in shown and "{'step': 5, 'of': 5}" in shown
    assert '<progress value="1.000" max="1">' in shown and "long_task" in shown  # the bar, updated in place
    assert "<table" in outputs(table) and "long_task" in outputs(table)
    assert any("image/png" in out.get("data", {}) for out in plot.outputs)
    assert "'processing_done': 10" in outputs(events)
    assert "Quickstart, done" in outputs(tidy)

    assert (tmp_path / "aomi.db").exists()  # the embedded default kept the history beside the notebook
    assert processes_using(ray_tmp) == []  # closing the client stopped the runtime it started
