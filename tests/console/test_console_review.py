"""Review of issue 16 (unrun when committed): checks the console's known gaps, each expected to fail until fixed."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from playwright.async_api import expect

from tests.console.conftest import Console
from tests.console.test_console import TURN_SECONDS, new_session, send

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_a_notice_after_a_message_announced_twice_is_still_shown(console: Console) -> None:
    """`Journal.set_tool_result` (a wallet outcome) announces a message a second time: the conversation counts
    `message` events to place system events, so it places the next one after a message that does not exist, and
    never shows it."""
    shown = await console.page.evaluate(
        """async () => {
        const { Conversation } = await import('./console/conversation.js');
        const list = document.createElement('ol');
        document.body.append(list);
        const c = new Conversation(list);
        const m = (id, sender, content, tool_result = null) => ({ id, sender, content, tool_result,
          is_streaming: false, queued: false, unanswered: false });
        const messages = [m(0, 'user', 'pay'), m(1, 'agent', '', ['wallet', '{"pending": true}'])];
        c.show({ messages, is_processing: false });
        c.addEvent({ type: 'message', message: messages[0] });
        c.addEvent({ type: 'message', message: messages[1] });
        c.addEvent({ type: 'message', message: m(1, 'agent', '', ['wallet', '{"hash": "0x1"}']) });
        c.addEvent({ type: 'system_notice', message: 'after the outcome' });
        const n = list.querySelectorAll('.system-event').length;
        list.remove();
        return n;
    }"""
    )
    assert shown == 1


async def test_reopening_a_session_does_not_reload_the_list_once_per_past_turn(console: Console) -> None:
    """Every replayed `processing_done` (and `title_changed`) starts a `GET /api/sessions`: a session with N past
    turns costs N list requests on each open or reload, each holding one of the browser's six connections."""
    page = console.page
    await new_session(console)
    done = page.locator("#timeline li[data-type='processing_done']")
    for n in range(1, 5):
        await send(console, "count to 2")
        await expect(done).to_have_count(n, timeout=TURN_SECONDS)
    lists: list[str] = []
    page.on("request", lambda r: lists.append(r.url) if "/api/sessions?" in r.url else None)
    await page.reload()
    await page.locator("body[data-ready]").wait_for(state="attached")
    await expect(done).to_have_count(4, timeout=TURN_SECONDS)
    assert len(lists) <= 2, lists


async def test_a_session_made_under_a_key_is_not_opened_after_the_key_is_removed(
    console: Console, keys: dict[str, str]
) -> None:
    """`newSession` opens what it made even if the caller changed while `POST /api/sessions` was on its way: a keyed
    App's session then shows to a caller without its key."""
    page = console.page
    await page.get_by_label("App key").fill(keys["research"])
    await page.get_by_role("button", name="Apply").click()
    await expect(page.locator("#app option[value='research']")).to_be_attached()
    await page.locator("#app").select_option("research")
    release = asyncio.Event()

    async def hold(route: Any) -> None:
        if route.request.method == "POST":
            await release.wait()
        await route.continue_()

    def lists(url: str) -> bool:  # the list's GETs and the maker's POST
        return "/api/sessions?" in url

    await page.route(lists, hold)
    async with page.expect_request(lambda r: r.method == "POST" and "/api/sessions" in r.url):
        await page.get_by_role("button", name="New session").click()
    await page.get_by_label("App key").fill("")
    await page.get_by_role("button", name="Apply").click()
    await expect(page.locator("#status")).to_contain_text("No key")
    async with page.expect_request_finished(lambda r: r.method == "GET" and "/api/sessions?" in r.url):
        release.set()
    await page.evaluate("() => new Promise(r => setTimeout(r, 0))")  # the task that follows the list's answer
    await expect(page.locator("#session-title")).to_have_text("No session open")
    await page.unroute(lists, hold)
