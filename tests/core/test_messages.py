"""Engine messages: one frozen data class per kind, one row shape, one handler each."""

from __future__ import annotations

import dataclasses

import pytest

from gennaker.engine import messages
from gennaker.engine.messages import CancelStage, RunTask, StartExecution, StartStage, Unreadable
from gennaker.engine.runner import HANDLERS, Engine

EXAMPLES = [
    StartExecution("e1"),
    StartStage("e1", "build"),
    RunTask("e1", "build", task=2, attempt=3),
    CancelStage("e1", "build", attempt=1),
    CancelStage("e1", "build"),
]


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: type(m).__name__)
def test_a_message_survives_its_queue_row(message: messages.Message) -> None:
    kind, execution_id, stage_id, payload = messages.encode(message)
    assert kind == type(message).__name__ and execution_id == "e1"
    assert "execution_id" not in payload and "stage_id" not in payload  # they have columns of their own
    assert messages.decode(kind, execution_id, stage_id, payload) == message


def test_messages_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        RunTask("e1", "s", task=0, attempt=1).task = 1  # type: ignore[misc]


def test_rows_of_the_earlier_dict_payloads_still_read() -> None:
    """Messages queued before the types existed (same kinds, same payload keys) are handled after an upgrade."""
    assert messages.decode("RunTask", "e1", "s", {"task": 1, "attempt": 2}) == RunTask("e1", "s", 1, 2)
    assert messages.decode("CancelStage", "e1", "s", {}) == CancelStage("e1", "s", None)


@pytest.mark.parametrize(
    ("kind", "stage_id", "payload"),
    [("Nope", "s", {}), ("RunTask", "s", {"task": 1}), ("StartStage", None, {})],
)
def test_a_row_that_makes_no_message_is_refused(kind: str, stage_id: str | None, payload: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        messages.decode(kind, "e1", stage_id, payload)


def test_every_message_type_has_exactly_one_handler_on_the_engine() -> None:
    assert set(HANDLERS) == {StartExecution, StartStage, RunTask, CancelStage, Unreadable}
    assert all(getattr(Engine, h.__name__) is h for h in HANDLERS.values())
