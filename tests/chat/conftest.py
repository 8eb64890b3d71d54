"""Fixtures of the chat tests: what left through the fan-out tier, and posting helpers."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from chat.models import Message
from chat.services.messages import message_post
from fanout import publish

_counter = iter(range(1, 10**9))


@dataclass
class RoomEventCall:
    room_id: int
    seq: int
    frame: dict[str, Any]  # the decoded frame

    @property
    def type(self) -> str:
        return str(self.frame["type"])


@dataclass
class FanoutCapture:
    """Calls made to ``fanout.publish`` (after Zulip's ``capture_send_event_calls``).

    Room events are published on commit: in a test that runs inside a transaction they are
    recorded only within ``committing()``, which runs the on-commit callbacks on exit.
    """

    _on_commit: Callable[..., AbstractContextManager[Any]]
    room_events: list[RoomEventCall] = field(default_factory=list)
    user_frames: list[tuple[tuple[int, ...], dict[str, Any]]] = field(default_factory=list)

    @contextmanager
    def committing(self) -> Iterator[FanoutCapture]:
        with self._on_commit(execute=True):
            yield self

    def types(self) -> list[str]:
        return [event.type for event in self.room_events]

    def clear(self) -> None:
        self.room_events.clear()
        self.user_frames.clear()

    def _room_event(
        self,
        *,
        room_id: int,
        seq: int,
        frame: bytes,
        community_id: int = 0,
        urls: Sequence[str] = (),
        access_version: int = -1,
    ) -> bool:
        decoded = orjson.loads(frame)
        # The call's own room and seq are the frame's: the tier routes on the former.
        assert (decoded["room"], decoded["seq"]) == (room_id, seq)
        self.room_events.append(RoomEventCall(room_id, seq, decoded))
        return True

    def _room_events(self, items: Sequence[Any]) -> bool:
        """A committed batch of the writer: its events, in order."""
        for item in items:
            self._room_event(room_id=item.room_id, seq=item.seq, frame=item.frame)
        return True

    def _to_users(self, *, user_ids: Any, frame: bytes) -> None:
        self.user_frames.append((tuple(user_ids), orjson.loads(frame)))


@pytest.fixture
def capture_fanout(
    monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> FanoutCapture:
    capture = FanoutCapture(django_capture_on_commit_callbacks)
    replacements: list[tuple[Any, Any]] = [
        (publish.publish_room_event, capture._room_event),
        (publish.publish_to_users, capture._to_users),
    ]
    many = getattr(publish, "publish_room_events", None)
    if many is not None:
        replacements.append((many, capture._room_events))
    # The apps call through the module (``publish.publish_room_event``); a module that imported
    # the function itself is patched as well.
    for name, module in list(sys.modules.items()):
        if module is None or name.split(".")[0] not in {"chat", "communities", "fanout"}:
            continue
        for attribute, value in list(vars(module).items()):
            for original, replacement in replacements:
                if value is original:
                    monkeypatch.setattr(module, attribute, replacement)
    return capture


def new_client_msg_id() -> str:
    return f"c-{next(_counter)}"


def post(user: Any, room: Any, body: str = "hello", **kwargs: Any) -> Message:
    """A message posted through the service (the rules under test elsewhere)."""
    kwargs.setdefault("client_msg_id", new_client_msg_id())
    message, created = message_post(actor=user, room=room, body=body, **kwargs)
    assert created
    return message


@pytest.fixture
def no_message_rate(settings: Any) -> None:
    """Tests that post many messages are not about the rate limit."""
    settings.MESSAGE_RATE = "100000/s"
