"""The apps' hooks: registered at start-up, and a missing one fails loudly instead of letting the
tier deliver to nobody or count nothing."""

from __future__ import annotations

import pytest

from communities import events as access_events
from fanout.hooks import HookMissing, Hooks, hooks


def test_an_unregistered_room_store_raises_naming_it() -> None:
    with pytest.raises(HookMissing, match="RoomStore"):
        _ = Hooks().store


def test_an_unregistered_link_counter_raises_naming_it() -> None:
    with pytest.raises(HookMissing, match="LinkCounter"):
        _ = Hooks().links


def test_the_apps_register_theirs_at_start_up() -> None:
    from chat.events import ChatRoomStore
    from reach.store import LinkReach

    assert isinstance(hooks.store, ChatRoomStore)
    assert isinstance(hooks.links, LinkReach)


def test_access_frames_unregistered_raise_and_chat_registers_them() -> None:
    from chat.events import ChatAccessFrames

    with pytest.raises(RuntimeError, match="AccessFrames"):
        _ = access_events._Hooks().frames
    assert isinstance(access_events.hooks.frames, ChatAccessFrames)


def test_access_frames_are_the_protocol_s_frames() -> None:
    frames = access_events.hooks.frames
    assert frames.room_removed(7, "kicked") == b'{"type":"room.removed","room":7,"reason":"kicked"}'
