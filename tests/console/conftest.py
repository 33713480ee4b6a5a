"""The browser suite: the console (`/console`) driven in real headless Chromium, Debian's, against the shared
runtime. One browser for the whole run, a fresh context (storage, cookies) per test; screenshots of the main views
go to `artifacts/console/`, which `.ci/run` names as the CI artifact."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.serve_app.conftest import keys  # noqa: F401  # the keyed Apps' keys, made as tests/serve_app make them

# Playwright's own browser download needs the network; the system's Chromium needs nothing.
CHROMIUM = shutil.which("chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "console"
DESKTOP = {"width": 1280, "height": 800}


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Any]:
    if CHROMIUM is None:
        missing = "no `chromium` on PATH: install Debian's package (apt-get install chromium), as .ci/run does"
        if os.environ.get("AOMI_REQUIRE_BROWSER"):  # .ci/run, where one could be installed: fail, not skip
            pytest.fail(missing)
        pytest.skip(missing)
    shutil.rmtree(ARTIFACTS, ignore_errors=True)  # this run's screenshots only
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield launched
        finally:
            await launched.close()


class Console:
    """A page of the console in a fresh browser context, with what it asked the network for and what it logged."""

    def __init__(self, page: Any, runtime_url: str) -> None:
        self.page = page
        self.runtime_url = runtime_url
        self.requests: list[str] = []
        self.problems: list[str] = []
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        page.on("response", lambda r: self.problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        page.on("console", lambda m: self.problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)

    async def open(self) -> None:
        await self.page.goto(f"{self.runtime_url}/console")
        await self.page.locator("body[data-ready]").wait_for(state="attached")

    async def screenshot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest_asyncio.fixture(loop_scope="session")
async def console(browser: Any, runtime_url: str) -> AsyncIterator[Console]:
    context = await browser.new_context(viewport=DESKTOP)
    try:
        view = Console(await context.new_page(), runtime_url)
        await view.open()
        yield view
        # Offline: the page asked nothing of any host but the runtime, and logged no error (a CSP refusal is one).
        assert all(u.startswith(f"{runtime_url}/") for u in view.requests), view.requests
        assert not view.problems, view.problems
    finally:
        await context.close()
