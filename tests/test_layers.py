"""The layers of docs/design.md: the domain imports no Ray, SQL or HTTP; the backends no Ray or HTTP; the client no
Ray and no server, outside its bootstrap."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import aomi_runtime.client

CHECK = """
import sys
import {modules}
found = sorted(m for m in {forbidden!r} if m in sys.modules)
print(",".join(found))
"""
# Every module of the client package but its bootstrap, the one that meets Ray and the server.
CLIENT_MODULES = sorted({m.name for m in pkgutil.iter_modules(aomi_runtime.client.__path__)} - {"bootstrap"})


@pytest.mark.parametrize(
    ("modules", "forbidden"),
    [
        (
            "aomi_runtime.agent.session, aomi_runtime.agent.turn, aomi_runtime.agent.demo_tools",
            ("ray", "sqlalchemy", "fastapi", "starlette", "httpx"),
        ),
        ("aomi_runtime.backends.history, aomi_runtime.backends.models", ("ray", "fastapi", "starlette")),
        ("aomi_runtime.actors.runtime", ("fastapi", "starlette.routing")),
        # each live session is a process: it imports no database layer, web framework, or unused model SDK
        # nor OpenTelemetry, unless its variables ask for traces (backends/otlp.py)
        (
            "aomi_runtime.actors.session",
            ("sqlalchemy", "aiosqlite", "asyncpg", "fastapi", "openai", "anthropic", "opentelemetry"),
        ),
        # the client runs where the runtime does not (a laptop, a notebook): only its bootstrap module, which
        # starts or joins a runtime, imports Ray or the server
        (
            ", ".join(f"aomi_runtime.client.{m}" for m in CLIENT_MODULES),
            ("ray", "sqlalchemy", "fastapi", "starlette", "pandas", "aomi_runtime.serve_app", "aomi_runtime.actors"),
        ),
        ("aomi_runtime.client", ("ray", "sqlalchemy", "fastapi", "starlette", "pandas")),
    ],
)
def test_a_layer_imports_nothing_from_the_floors_above_it(modules: str, forbidden: tuple[str, ...]) -> None:
    out = subprocess.run(
        [sys.executable, "-c", CHECK.format(modules=modules, forbidden=forbidden)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert out == "", f"{modules} imported {out}"
