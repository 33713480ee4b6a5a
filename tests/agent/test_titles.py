"""`agent/titles.py`: the automatic title. What a model answers is cleaned to one short line; the model is asked
with the title instruction and the conversation's opening; a title is made once, never over one given by hand,
and a failing model leaves the session as it was."""

from __future__ import annotations

import logging

import pytest

from aomi_runtime.agent.apps import App, AppSpec, ModelSpec
from aomi_runtime.agent.event_log import EventLog
from aomi_runtime.agent.journal import Journal
from aomi_runtime.agent.records import DEFAULT_TITLE, Message, SessionRecord, StoredSession
from aomi_runtime.agent.titles import (
    AUTO_TITLE_CHARS,
    TITLE_CONTEXT_MESSAGES,
    TITLE_INSTRUCTION,
    AutoTitle,
    clean_title,
    generate_title,
)
from aomi_runtime.backends.history import InMemoryHistory
from aomi_runtime.backends.models import ScriptedModel, load_model
from tests.conftest import free_port
from tests.fake_provider import FakeProvider
from tests.helpers import scripted_app


@pytest.mark.parametrize(
    ("answer", "title"),
    [
        ("Trip to Lisbon", "Trip to Lisbon"),
        ('"Trip to Lisbon."', "Trip to Lisbon"),
        ("\n\n  **Trip to Lisbon**  \nA second line", "Trip to Lisbon"),
        ("# `Trip to Lisbon`.", "Trip to Lisbon"),
        ('"Trip to Lisbon".', "Trip to Lisbon"),
        ("Intro to C#.", "Intro to C#"),  # after the period only quotes go: a title may end in '#' or '*'
        ("", ""),
        ("  \n ", ""),
    ],
)
def test_an_answer_is_cleaned_to_its_first_line(answer: str, title: str) -> None:
    assert clean_title(answer) == title


def test_a_long_answer_is_cut_with_an_ellipsis() -> None:
    title = clean_title("word " * 40)
    assert (
        len(title) == AUTO_TITLE_CHARS
        and title.endswith("…")
        and title[:-1] == ("word " * 40)[: AUTO_TITLE_CHARS - 1].rstrip()
    )


def conversation(turns: int) -> list[Message]:
    said: list[Message] = []
    for i in range(turns):
        said += [
            Message(id=2 * i, sender="user", content=f"question {i}"),
            Message(id=2 * i + 1, sender="agent", content=f"answer {i}"),
        ]
    return said


async def test_the_model_is_asked_with_the_instruction_and_the_opening_only(
    fake_provider: tuple[FakeProvider, str],
) -> None:
    fake, base = fake_provider
    spec = ModelSpec(label="T", slug="t", provider="openai", model="titles-direct", base_url=f"{base}/v1")
    model = load_model(spec, "sk-test")
    try:
        title = await generate_title(model, conversation(5))
    finally:
        await model.aclose()
    assert title == "GPT title: question 2"  # the fake names the last user message it was shown: the third
    (sent,) = fake.requests_for("titles-direct")
    assert sent["messages"][0] == {"role": "system", "content": TITLE_INSTRUCTION}
    shown = [m["content"] for m in sent["messages"][1:]]
    assert shown == [f"{kind} {i}" for i in range(3) for kind in ("question", "answer")][:TITLE_CONTEXT_MESSAGES]


def journal_of(messages: list[Message], **record: object) -> Journal:
    history = InMemoryHistory()
    stored = StoredSession(record=SessionRecord(session_id="s1", app="default", **record), messages=messages)
    return Journal(history, "default", stored, EventLog(history, "default", "s1", 0), on_broken=lambda: None)


async def test_a_title_is_made_once_stored_and_announced() -> None:
    journal = journal_of([Message(id=0, sender="user", content="plan a trip to Lisbon in May please")])
    auto = AutoTitle(scripted_app(), journal)
    auto.start()
    assert auto.is_running
    first = auto.task
    auto.start()  # while one is being made: the same one
    assert auto.task is first
    await first
    assert journal.record.title == "Plan a trip to Lisbon in"
    stored = await journal._history.get("default", "s1")  # what the journal committed
    assert stored is not None and stored.title == "Plan a trip to Lisbon in"
    events = await journal._history.events("default", "s1", 0, 10)
    assert [e.data for e in events] == [
        {"type": "title_changed", "session_id": "s1", "new_title": "Plan a trip to Lisbon in"}
    ]
    auto.start()  # it has one now
    assert auto.task is first and not auto.is_running


@pytest.mark.parametrize("record", [{"title": "Mine", "title_is_manual": True}, {"title": "Made before"}])
def test_no_title_is_made_over_one_the_session_has(record: dict[str, object]) -> None:
    auto = AutoTitle(scripted_app(), journal_of([Message(id=0, sender="user", content="hello")], **record))
    auto.start()
    assert auto.task is None


async def test_a_failing_model_leaves_the_title_and_says_so_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    unreachable = ModelSpec(
        label="Gone",
        slug="gone",
        provider="openai",
        model="gone",
        base_url=f"http://127.0.0.1:{free_port()}/v1",
        max_retries=0,
    )
    app = App(
        spec=AppSpec(name="default", models=(unreachable,)),
        providers={"gone": load_model(unreachable, "sk-test")},
        tools=scripted_app().tools,
    )
    journal = journal_of([Message(id=0, sender="user", content="hello")])
    auto = AutoTitle(app, journal)
    with caplog.at_level(logging.WARNING, logger="aomi_runtime.agent.titles"):
        auto.start()
        assert auto.task is not None
        try:
            await auto.task
        finally:
            await app.aclose()
    assert journal.record.title == DEFAULT_TITLE and journal.record.last_seq == 0
    assert any("title of session" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


async def test_the_scripted_models_title_is_its_first_words() -> None:
    assert (
        await generate_title(ScriptedModel(), [Message(sender="user", content="what is the weather in Paris today")])
        == "What is the weather in Paris"
    )
