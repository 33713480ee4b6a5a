"""An App's limits on what clients send, as the edge checks them before any session is found or made."""

from __future__ import annotations

import pytest

from aomi_runtime.agent.apps import Limits
from aomi_runtime.agent.errors import InvalidInput, MessageTooLarge

LIMITS = Limits()  # the default: 64 KiB


def test_a_message_over_the_limit_or_empty_is_refused_and_one_at_the_limit_is_not() -> None:
    with pytest.raises(MessageTooLarge, match=r"^The message is larger than this App's limit of 65536 bytes\.$"):
        LIMITS.check_message("x" * (64 * 1024 + 1))
    with pytest.raises(InvalidInput, match=r"^The message is empty; send some text\.$"):
        LIMITS.check_message("   \n")
    LIMITS.check_message("é" * (32 * 1024))  # 64 KiB exactly, in UTF-8


def test_a_message_holding_a_lone_surrogate_is_refused() -> None:
    with pytest.raises(InvalidInput, match=r"^The message holds a lone surrogate"):
        LIMITS.check_message("a\ud800b")


def test_a_user_state_over_the_limit_as_compact_json_is_refused_and_one_at_the_limit_is_not() -> None:
    small = Limits(max_message_bytes=100)
    at_limit = {"a": "é" * ((100 - len('{"a":""}')) // 2)}  # 100 bytes as compact JSON in UTF-8
    small.check_user_state(at_limit)
    with pytest.raises(MessageTooLarge, match=r"^user_state is larger than this App's limit of 100 bytes"):
        small.check_user_state({**at_limit, "b": 1})
    with pytest.raises(InvalidInput, match=r"^user_state holds a lone surrogate"):
        small.check_user_state({"a": "\udfff"})
