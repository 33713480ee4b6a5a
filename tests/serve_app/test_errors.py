"""Errors cross Ray by pickling, and each maps to one status."""

from __future__ import annotations

import pickle

import pytest

from aomi_runtime.agent.errors import (
    AomiError,
    ConfigError,
    DeploymentError,
    InvalidInput,
    MessageTooLarge,
    ServerError,
)
from aomi_runtime.status import STATUS, status_of


def every_error() -> list[type[AomiError]]:
    found, todo = [], [AomiError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


@pytest.mark.parametrize("cls", every_error(), ids=lambda c: c.__name__)
def test_every_error_pickles_with_its_message(cls: type[AomiError]) -> None:
    error = cls("what went wrong, and what to do")
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is cls and str(back) == back.message == "what went wrong, and what to do"


def test_every_error_but_the_base_has_a_status() -> None:
    # ServerError is the client's, for an answer of any other status: it carries its own. ConfigError and
    # DeploymentError stop a start, never answer a request.
    unanswered = (AomiError, ServerError, ConfigError, DeploymentError)
    assert {cls for cls in every_error() if cls not in unanswered} <= set(STATUS)
    assert not set(unanswered) & set(STATUS)
    assert status_of(ServerError("x", 418)) == 500 and ServerError("x", 418).status == 418
    assert status_of(MessageTooLarge("x")) == 413 and status_of(InvalidInput("x")) == 400
    assert status_of(AomiError("x")) == 500
