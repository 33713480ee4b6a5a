"""The Python client against the shared runtime: over real HTTP (sync and async faces), and in-cluster."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Iterator
from unittest.mock import ANY

import pytest

from aomi_runtime import AsyncClient, Client
from aomi_runtime.agent.errors import (
    AppMismatch,
    Forbidden,
    InvalidInput,
    MessageTooLarge,
    SessionNotFound,
    Unauthorized,
)
from aomi_runtime.agent.records import INTERRUPTION
from aomi_runtime.backends.keys import SqlKeys
from aomi_runtime.backends.models import ScriptedModel
from aomi_runtime.client.frames import messages_frame
from aomi_runtime.serve_app.settings import Settings
from tests.serve_app.conftest import sid
from tests.serve_app.secret_tools import digest

COUNT_PAUSE = ScriptedModel().count_pause  # the default App's model: seconds between the numbers it counts
SLOW_TOOL = '/tool long_task {"steps": 3, "pause": 0.05}'


@pytest.fixture
def client(runtime_url: str) -> Iterator[Client]:
    with Client(runtime_url) as c:
        yield c


@pytest.fixture
async def aclient(runtime_url: str) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(runtime_url) as c:
        yield c


def test_send_waits_for_the_turn_and_returns_its_messages(client: Client) -> None:
    session = client.session()
    started = time.monotonic()
    reply = session.send("count to 3")
    took = time.monotonic() - started

    assert not reply.snapshot.is_processing
    assert [m.sender for m in reply.messages] == ["user", "agent"]
    assert reply.messages[0].content == "count to 3" and reply.text == "1 2 3"
    assert reply.done is not None and reply.error is None and not reply.interrupted
    types = [e.type for e in reply.events]
    assert types[-1] == "processing_done" and "message" in types
    assert session.last_event_id == reply.events[-1].seq
    # The turn as `send` timed it: no shorter than the scripted model's two pauses between "1 2 3" (count_pause,
    # 0.05 s), no longer than the call.
    assert 2 * COUNT_PAUSE <= reply.seconds <= took
    # The turn as the runtime timed it, from its start to its end (before `send` saw them): its one model call too.
    assert reply.timings is not None and 2 * COUNT_PAUSE * 1000 <= reply.timings.ms <= reply.seconds * 1000
    assert [s.kind for s in reply.timings.spans if s.kind != "commit"] == ["model"]


def test_a_slow_tool_shows_progress_on_a_terminal(client: Client, capsys: pytest.CaptureFixture[str]) -> None:
    reply = client.session().send(SLOW_TOOL, progress=True)

    updates = [e.data["result"] for e in reply.events if e.type == "tool_update"]
    assert updates == [{"step": 1, "of": 3}, {"step": 2, "of": 3}, {"step": 3, "of": 3}]
    assert reply.messages[2].tool_result is not None and reply.messages[2].tool_result[0] == "long_task"
    shown = capsys.readouterr().err
    assert "long_task [#######" in shown and "1/3" in shown and "3/3" in shown
    assert "done" in shown.splitlines()[-1]


def test_no_progress_is_shown_where_output_is_not_interactive(
    client: Client, capsys: pytest.CaptureFixture[str]
) -> None:
    reply = client.session().send(SLOW_TOOL)
    assert any(e.type == "tool_update" for e in reply.events)  # there was progress to show
    assert capsys.readouterr().err == ""


async def test_a_queued_message_waits_for_its_own_turn(aclient: AsyncClient) -> None:
    session = await aclient.session()
    events = session.events()
    first = asyncio.create_task(session.send("count to 5", progress=False))
    async for event in events:  # the first turn is running: the second message queues behind it
        if event.type == "processing_started":
            break
    await events.aclose()
    second = await session.send("count to 2", progress=False)
    done_first = await first

    assert done_first.text == "1 2 3 4 5" and second.text == "1 2"
    assert second.messages[0].content == "count to 2"
    assert done_first.done is not None and second.done is not None
    assert done_first.done.seq < second.done.seq


async def test_a_send_whose_message_an_interrupt_left_unanswered_says_so(aclient: AsyncClient) -> None:
    session = await aclient.session()
    await session.send("count to 200", wait=False, progress=False)
    queued = asyncio.create_task(session.send("later", progress=False))
    await asyncio.sleep(0.3)  # the message is queued, its send waiting for its turn
    await session.interrupt()
    reply = await asyncio.wait_for(queued, 10)
    assert reply.interrupted and reply.done is not None and reply.done.data.get("unanswered")
    assert reply.messages[0].unanswered and reply.text == "" and reply.timings is None  # no turn ran for it


async def test_events_resume_after_the_last_one_seen(aclient: AsyncClient) -> None:
    session = await aclient.session()
    await session.send("count to 3", progress=False)
    await session.send("count to 2", progress=False)

    everything = [e async for e in _take(session.events(after=0), session.last_event_id)]
    assert [e.seq for e in everything] == list(range(1, session.last_event_id + 1))

    fresh = await aclient.session(session.id)  # a new object for the same session: starts from the beginning
    first_part = [e async for e in _take(fresh.events(), 4)]
    rest = [e async for e in _take(fresh.events(), len(everything) - 4)]  # resumes after the 4th
    assert first_part + rest == everything


async def _take(events: AsyncIterator[object], count: int) -> AsyncIterator[object]:
    async for event in events:
        yield event
        count -= 1
        if count == 0:
            return


async def test_events_are_followed_live(aclient: AsyncClient) -> None:
    session = await aclient.session()
    await session.send("count to 2", wait=False)
    seen: list[str] = []
    async for event in session.events():
        seen.append(event.type)
        if event.type == "processing_done":
            if seen.count("processing_done") == 2:
                break
            # Made while the stream is open: its events can only reach it live.
            await session.send("count to 1", wait=False)
    assert seen.count("processing_started") == 2 and seen[-1] == "processing_done"


async def test_a_dropped_stream_is_resumed_where_it_broke(runtime_url: str, aclient: AsyncClient) -> None:
    async with _DroppingProxy(runtime_url) as proxy, AsyncClient(proxy.url) as client:
        session = await client.session()
        await session.send("count to 3", progress=False)
        before = session.last_event_id
        seen: list[int] = []
        at_drop = 0
        async for event in session.events(after=0):
            seen.append(event.seq)
            if event.seq == before:  # all stored events read: cut the link, then make more events
                at_drop = proxy.connections
                await proxy.drop()
                await (await aclient.session(session.id)).send("count to 2", wait=False)
            if event.type == "processing_done" and event.seq > before:
                break
        assert seen == list(range(1, seen[-1] + 1))  # every event once, across the break
        assert seen[-1] > before and proxy.connections > at_drop  # the rest came over a new connection


class _DroppingProxy:
    """A TCP proxy in front of the runtime that can cut every open connection, as a network fault would."""

    def __init__(self, target_url: str) -> None:
        host, port = target_url.removeprefix("http://").split(":")
        self._target = (host, int(port))
        self._writers: set[asyncio.StreamWriter] = set()
        self.connections = 0

    async def __aenter__(self) -> _DroppingProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.drop()
        self._server.close()
        await self._server.wait_closed()

    async def drop(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


def test_interrupt_rename_archive_delete(client: Client) -> None:
    session = client.session(title="Plans")
    assert session.title == "Plans" and session.info().title == "Plans"
    reply = session.send("count to 200", wait=False)
    assert reply.snapshot.is_processing and reply.done is None

    stopped = session.interrupt()
    assert not stopped.is_processing and INTERRUPTION in stopped.system_events

    assert session.rename("Renamed") == "Renamed" and session.info().title == "Renamed"
    assert session.archive() is True and session.info().is_archived
    assert session.unarchive() is False and not session.info().is_archived
    assert session.delete() is True
    with pytest.raises(SessionNotFound):
        session.info()
    assert session.delete() is False  # idempotent, as Aomi's widget expects
    with pytest.raises(SessionNotFound):
        client.session(session.id, create=False)


def test_ctrl_c_during_send_interrupts_the_turn(client: Client) -> None:
    session = client.session()
    threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()  # Ctrl-C while the turn runs
    with pytest.raises(KeyboardInterrupt):
        session.send("count to 200")

    done = [e for e in session.recent_events(20) if e["type"] == "processing_done"]
    assert done == [
        {"type": "processing_done", "session_id": session.id, "request_id": ANY, "interrupted": True, "timings": ANY}
    ]
    assert not session.state().is_processing


def test_ctrl_c_while_queued_leaves_the_running_turn_alone(client: Client) -> None:
    session = client.session()
    running = session.send("count to 30", wait=False)
    threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
    with pytest.raises(KeyboardInterrupt):
        session.send("count to 2")  # queued behind the running turn when Ctrl-C comes

    done = []
    for event in session.events(after=0):  # both turns run to their end
        if event.type == "processing_done":
            done.append(event.data)
            if len(done) == 2:
                break
    assert [d["request_id"] == running.request_id for d in done] == [True, False]
    assert not any(d.get("interrupted") for d in done)  # neither turn was stopped
    assert session.messages()[1].content == " ".join(str(n) for n in range(1, 31))


def test_ctrl_c_while_following_events_is_a_keyboard_interrupt(client: Client) -> None:
    session = client.session()
    session.send("count to 2")
    threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
    seen = []
    with pytest.raises(KeyboardInterrupt):
        for event in session.events(after=0):  # replays, then waits for more: only Ctrl-C ends it
            seen.append(event.seq)
    assert seen == list(range(1, session.last_event_id + 1)) and seen
    assert session.state().messages  # the client still works afterwards


def test_system_events_handed_out_during_send_are_in_its_reply(client: Client) -> None:
    session = client.session()
    session.send("count to 1")
    session.system("Wallet connected")
    reply = session.send("count to 2")
    assert {"SystemNotice": "Wallet connected"} in reply.snapshot.system_events
    assert session.state().system_events == []  # handed out once: to the reply


async def test_send_stops_waiting_when_the_session_is_deleted(aclient: AsyncClient) -> None:
    session = await aclient.session()
    waiting = asyncio.create_task(session.send("count to 500", progress=False))
    await (await aclient.session(session.id)).send("count to 1", wait=False)  # queued: proves the first runs
    await session.delete()
    with pytest.raises(SessionNotFound, match="deleted while its turn was awaited"):
        await asyncio.wait_for(waiting, 30)


async def test_send_gives_up_waiting_after_its_timeout(aclient: AsyncClient) -> None:
    session = await aclient.session()
    with pytest.raises(TimeoutError):
        await session.send("count to 500", timeout=0.5, progress=False)
    assert (await session.state()).is_processing  # the turn goes on in the runtime
    await session.interrupt()


def test_a_runtime_cannot_be_started_over_one_already_served(runtime_url: str) -> None:
    with pytest.raises(RuntimeError, match="Serve already runs"):
        Client.local()
    with Client(runtime_url) as client:
        assert client.health()  # and the one running was left alone


def test_sessions_are_listed_by_public_key(runtime_url: str) -> None:
    wallet = f"0x{sid().replace('-', '')}"
    with Client(runtime_url, public_key=wallet) as client:
        made = {client.session().id, client.session().id}
        with Client(runtime_url) as anonymous:
            other = anonymous.session()
        listed = client.sessions()
        assert {s.session_id for s in listed} == made and other.id not in made
        assert client.sessions(limit=1)[0].session_id in made
    with Client(runtime_url) as anonymous, pytest.raises(InvalidInput, match="public key"):
        anonymous.sessions()


def test_history_as_plain_objects_and_as_a_dataframe(client: Client) -> None:
    session = client.session()
    session.send(SLOW_TOOL)
    messages = session.messages()
    frame = session.dataframe()

    assert len(frame) == len(messages) == 4
    assert list(frame["sender"]) == [m.sender for m in messages] == ["user", "agent", "agent", "agent"]
    assert frame.loc[2, "tool_topic"] == "long_task" and '"done"' in frame.loc[2, "tool_result"]
    assert str(frame["timestamp"].dtype).startswith("datetime64")
    assert list(messages_frame([]).columns) == list(frame.columns)


def app_key(settings: Settings, app: str) -> str:
    """A key for `app`, made as an operator would, in the runtime's own database."""

    async def make() -> str:
        store = SqlKeys.from_url(settings.database_url)
        try:
            return await store.create(app, "client tests")
        finally:
            await store.close()

    return asyncio.run(make())


def test_a_keyed_app_with_its_key_a_remote_model_a_model_switch_and_system_messages(
    runtime_url: str, runtime_settings: Settings
) -> None:
    with Client(runtime_url, app="research", api_key=app_key(runtime_settings, "research")) as client:
        assert client.apps() == ["default", "helpdesk", "research"]
        assert client.models() == ["Fake GPT", "Scripted"]
        session = client.session()
        assert session.send("first").text == "Echo: first"  # the OpenAI-compatible fake, streamed
        assert session.set_model("Scripted") == "scripted"
        assert session.send("second").text == 'You said: "second"'

        notice = session.system("A notice")
        assert (notice.sender, notice.content) == ("system", "A notice")
        assert json.loads(session.system({"type": "wallet_tx", "hash": "0xabc"}).content) == {
            "type": "wallet_tx",
            "hash": "0xabc",
        }
        published = session.recent_events(2)
        assert [e["type"] for e in published] == ["system_notice", "wallet_tx"]
        assert published[1] == {"type": "wallet_tx", "session_id": session.id, "hash": "0xabc"}


def test_errors_are_the_runtimes_own(runtime_url: str) -> None:
    with Client(runtime_url, app="billing") as keyless, pytest.raises(Unauthorized, match="needs a key"):
        keyless.session()
    with Client(runtime_url, app="billing", api_key="aomi_nope_nope") as wrong, pytest.raises(Forbidden):
        wrong.session()
    with Client(runtime_url) as client:
        session = client.session()
        with pytest.raises(MessageTooLarge):
            session.send("x" * (64 * 1024 + 1))
        with pytest.raises(SessionNotFound):
            client.session(sid(), create=False)
        with pytest.raises(InvalidInput, match="session id is malformed"):
            client.session("not a valid id")
    with Client(runtime_url, app="helpdesk") as other, pytest.raises(AppMismatch):
        other.session(session.id).send("hi")


def test_the_client_checks_health_and_lists_apps_and_models(client: Client) -> None:
    assert client.health()
    assert "default" in client.apps() and "billing" not in client.apps()
    assert client.models() == ["Scripted (offline)"]


def test_in_cluster_mode_behaves_as_over_http(runtime_url: str, runtime_settings: Settings) -> None:
    with Client(runtime_url) as http, Client.in_cluster(runtime_settings) as local:
        over_http = http.session()
        over_http.send("count to 2")

        same = local.session(over_http.id)  # the same session, reached over Ray handles
        reply = same.send(SLOW_TOOL)
        assert [m.content for m in same.messages()][:2] == ["count to 2", "1 2"]
        assert [e.data["result"]["step"] for e in reply.events if e.type == "tool_update"] == [1, 2, 3]
        streamed = []
        for event in same.events(after=0):  # the event stream, through the routes in this process
            streamed.append(event.seq)
            if event.seq == reply.events[-1].seq:
                break
        assert streamed == list(range(1, reply.events[-1].seq + 1))

        assert http.session(over_http.id).messages() == same.messages()
    with Client.in_cluster(runtime_settings, app="billing") as keyless, pytest.raises(Unauthorized):
        keyless.session()
    elsewhere = runtime_settings.model_copy(update={"namespace": "nothing-deployed-here"})
    with pytest.raises(RuntimeError, match="No aomi runtime runs"):
        Client.in_cluster(elsewhere)


def test_a_clients_secrets_reach_its_sessions_tools_and_a_batch_is_simulated(
    runtime_url: str, runtime_settings: Settings
) -> None:
    key, client_id = app_key(runtime_settings, "billing"), sid()
    ask = '/tool secret_digest {"name": "TOKEN"}'
    with Client(runtime_url, app="billing", api_key=key, client_id=client_id) as client:
        assert client.set_secrets({"TOKEN": "s3cret", "OTHER": "x"}) == {
            "TOKEN": "$SECRET:TOKEN",
            "OTHER": "$SECRET:OTHER",
        }
        session = client.session()
        reply = session.send(ask)  # the chat names the client: its session's tool reads the client's secret
        assert json.loads(reply.messages[2].tool_result[1]) == {"digest": digest("s3cret")}  # type: ignore[index]
        assert "s3cret" not in session.state().model_dump_json()
        assert client.delete_secret("TOKEN") and not client.delete_secret("TOKEN")
        assert "No secret 'TOKEN'" in session.send(ask).messages[-2].tool_result[1]  # type: ignore[index]
        assert client.clear_secrets() == 1
    with Client(runtime_url, app="billing", api_key=key) as no_client, pytest.raises(InvalidInput, match="client_id"):
        no_client.set_secrets({"TOKEN": "v"})
    with Client(runtime_url) as client:
        result = client.simulate([{"to": "0x" + "11" * 20, "value": "1000"}, {"to": "0x" + "22" * 20}])
        assert result["batch_success"] and len(result["steps"]) == 2 and result["fee"]["amount_wei"]
