"""What the Python client shows while a turn runs: a line per running tool with its progress, updated in place
in a notebook (one display, rewritten) or a terminal (one line, rewritten); nothing when output is not
interactive (a log file, a pipe, CI)."""

from __future__ import annotations

import html
import sys
import time
from typing import Any, Protocol, TextIO

from ..agent.records import Event

BAR_WIDTH = 20


class Display(Protocol):
    def show(self, text: str, fraction: float | None) -> None: ...

    def close(self) -> None: ...


class TurnProgress:
    """Follows one turn's events and shows where it is: which tools run, how far each is, how long it took."""

    def __init__(self, display: Display | None) -> None:
        self._display = display
        self._started = time.monotonic()
        self._tools: dict[str, tuple[str, str, float | None]] = {}  # call id -> name, detail, fraction

    def update(self, event: Event) -> None:
        if self._display is None:
            return
        kind = event.data.get("type")
        if kind in ("tool_update", "tool_complete"):
            name = str(event.data.get("tool_name", "tool"))
            result = event.data.get("result")
            if kind == "tool_complete":
                failed = isinstance(result, dict) and "error" in result
                self._tools[str(event.data.get("id"))] = (name, "failed" if failed else "done", 1.0)
            else:
                self._tools[str(event.data.get("id"))] = (name, *describe(result))
        elif kind == "message" and isinstance(call := event.data.get("message", {}).get("tool_call"), dict):
            # A quick call (no progress) has no tool events: its result message says it ran.
            self._tools.setdefault(str(call.get("id")), (str(call.get("name", "tool")), "done", 1.0))
        elif kind != "processing_started":
            return
        self._render()

    def finish(self, outcome: str) -> None:
        """Show how the turn ended: "done", "interrupted", "error: ...", or why it is no longer followed."""
        if self._display is None:
            return
        self._render(outcome)
        self._display.close()

    def _render(self, state: str = "running") -> None:
        assert self._display is not None
        parts = [f"turn {state}, {time.monotonic() - self._started:.1f} s"]
        fraction = None
        for name, detail, done in self._tools.values():
            parts.append(f"{name} {bar(done)} {detail}".rstrip())
            fraction = done
        self._display.show(" · ".join(parts), fraction)


def describe(update: Any) -> tuple[str, float | None]:
    """A tool's progress report as text and, where it says how far it is, a fraction: `{"step": 2, "of": 3}`,
    `{"done": 2, "total": 3}` or `{"progress": 0.66}`."""
    if isinstance(update, dict):
        for done_key, total_key in (("step", "of"), ("done", "total")):
            done, total = update.get(done_key), update.get(total_key)
            if isinstance(done, int | float) and isinstance(total, int | float) and total > 0:
                return f"{done}/{total}", max(0.0, min(1.0, done / total))
        share = update.get("progress")
        if isinstance(share, int | float):
            return f"{share:.0%}", max(0.0, min(1.0, float(share)))
    return str(update)[:60], None


def bar(fraction: float | None) -> str:
    if fraction is None:
        return ""
    filled = round(fraction * BAR_WIDTH)
    return "[" + "#" * filled + "." * (BAR_WIDTH - filled) + "]"


class TerminalDisplay:
    """One line on a terminal, rewritten in place."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def show(self, text: str, fraction: float | None) -> None:
        self._stream.write("\r\x1b[2K" + text)
        self._stream.flush()

    def close(self) -> None:
        self._stream.write("\n")
        self._stream.flush()


class NotebookDisplay:
    """One output of a notebook cell, rewritten in place (text, and HTML with a progress bar)."""

    def __init__(self) -> None:
        from IPython.display import display

        self._handle = display(_Rich("turn starting", None), display_id=True)  # type: ignore[no-untyped-call]  # IPython's display is unannotated

    def show(self, text: str, fraction: float | None) -> None:
        self._handle.update(_Rich(text, fraction))

    def close(self) -> None:
        pass


class _Rich:
    def __init__(self, text: str, fraction: float | None) -> None:
        self._text = text
        self._fraction = fraction

    def __repr__(self) -> str:
        return self._text

    def _repr_html_(self) -> str:
        meter = "" if self._fraction is None else f'<progress value="{self._fraction:.3f}" max="1"></progress> '
        return f"<div>{meter}<code>{html.escape(self._text)}</code></div>"


def in_notebook() -> bool:
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def progress_for(show: bool | None) -> TurnProgress:
    """`show`: True or False, or None to show progress only where output is interactive."""
    if show is False:
        return TurnProgress(None)
    if in_notebook():
        return TurnProgress(NotebookDisplay())
    if show or sys.stderr.isatty():
        return TurnProgress(TerminalDisplay(sys.stderr))
    return TurnProgress(None)
