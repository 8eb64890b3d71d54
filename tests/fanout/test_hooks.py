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


@pytest.mark.django_db
def test_the_room_store_gives_the_sweep_heads_and_recent_events_after_a_seq() -> None:
    """The sweep's two questions to the database: every room's head, and a room's events
    after a seq committed long enough ago and within the window, with a new message's links."""
    from datetime import timedelta

    from django.db import transaction
    from django.utils import timezone

    from chat.events import SWEEP_WINDOW, append_event, lock_room
    from chat.models import RoomEvent
    from tests.factories import RoomFactory

    room, quiet = RoomFactory(), RoomFactory()
    with transaction.atomic():
        locked = lock_room(room.pk)
        for n in (1, 2, 3):
            body = f"see https://example.com/{n}"
            append_event(locked, "message.new", {"message": {"id": n, "body": body}})
        append_event(locked, "message.deleted", {"message_id": 1})
    now = timezone.now()
    ages = {1: SWEEP_WINDOW + timedelta(minutes=1), 2: timedelta(minutes=1), 3: timedelta(0)}
    for seq, age in ages.items():
        RoomEvent.objects.filter(room=room, seq=seq).update(created_at=now - age)
    RoomEvent.objects.filter(room=room, seq=4).update(created_at=now - timedelta(seconds=30))

    store = hooks.store
    heads = store.heads()
    assert (room.pk, 4) in heads
    assert quiet.pk not in {room_id for room_id, _ in heads}  # no event: not a head
    old_enough = store.events_after(room.pk, 0, 10, 2.0)
    assert [e.seq for e in old_enough] == [2, 4]  # 1 is past the window, 3 is too young
    assert old_enough[0].community_id == room.community_id
    assert old_enough[0].urls == ("https://example.com/2",)
    assert old_enough[1].urls == ()  # only a new message carries links
    assert old_enough[0].frame.startswith(b'{"type":"message.new","room":%d,"seq":2' % room.pk)
    assert [e.seq for e in store.events_after(room.pk, 0, 10, 0.0)] == [2, 3, 4]
    assert [e.seq for e in store.events_after(room.pk, 2, 10, 0.0)] == [3, 4]
    assert [e.seq for e in store.events_after(room.pk, 0, 1, 0.0)] == [2]
    assert store.events_after(quiet.pk, 0, 10, 0.0) == []
