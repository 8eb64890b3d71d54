"""Appending room events and handing them to the fan-out tier on commit."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any, cast

from django.db import transaction
from django.utils import timezone

from chat.models import RoomEvent
from chat.protocol import RemovedReason, RoomAdded, RoomRemoved, RoomUpdated, encode
from chat.protocol import Room as RoomFrame
from communities.models import Room
from communities.selectors import readable_rooms_filter, room_reader_ids
from fanout import publish
from fanout.hooks import StoredEvent

# The outbox sweep looks this far back: older events the tier never routed (a long outage of
# every worker) are left to the clients' ``sync`` and to gap filling.
SWEEP_WINDOW = timedelta(minutes=10)


def lock_room(room_id: int) -> Room:
    """The room's row, locked until the transaction ends: seqs are assigned under it."""
    return Room.objects.select_for_update().get(pk=room_id)


def append_event(
    room: Room, type_: str, payload: dict[str, Any], *, urls: Sequence[str] = ()
) -> RoomEvent:
    """Give the locked ``room`` its next seq and store the event; publish it on commit.

    Must run inside the transaction that holds ``lock_room(room.pk)``. ``urls`` (of a new
    message) are counted for link reach by the fan-out tier.
    """
    room.head_seq += 1
    Room.objects.filter(pk=room.pk).update(head_seq=room.head_seq)
    event = RoomEvent.objects.create(room=room, seq=room.head_seq, type=type_, payload=payload)
    frame = event_frame(room.pk, event.seq, type_, payload)
    community_id, access_version = room.community_id, room.access_version

    def publish_on_commit() -> None:
        # A publish that fails is retried by the tier, and what it never routes is published
        # again by its sweep (docs/fanout.md): nothing is marked here.
        publish.publish_room_event(
            room_id=room.pk,
            seq=event.seq,
            frame=frame,
            community_id=community_id or 0,  # a DM: none (and no link reach)
            urls=urls if community_id is not None else (),
            access_version=access_version,
        )

    transaction.on_commit(publish_on_commit)
    return event


def event_frame(room_id: int, seq: int, type_: str, payload: dict[str, Any]) -> bytes:
    return encode({"type": type_, "room": room_id, "seq": seq, **payload})


def readers_at_version(room_id: int) -> tuple[frozenset[int], int]:
    """The room's readers and its access version, the version read first: a change committed
    in between shows in the readers and raises the version again, so the pair never claims
    more than the readers show."""
    version = Room.objects.filter(pk=room_id).values_list("access_version", flat=True).first()
    return room_reader_ids(room_id=room_id), version or 0


def events_between(room_id: int, after: int, upto: int, user_id: int) -> list[StoredEvent] | None:
    """The room's stored events with ``after < seq <= upto``, in seq order, as frames; None
    when ``user_id`` cannot read the room now (a gap fill or catch-up never reaches past a
    revocation, even one whose ``room.removed`` was lost)."""
    from django.contrib.auth.models import User

    if not Room.objects.filter(readable_rooms_filter(User(pk=user_id)), pk=room_id).exists():
        return None
    rows = RoomEvent.objects.filter(room_id=room_id, seq__gt=after, seq__lte=upto).order_by("seq")
    return [
        StoredEvent(room_id, seq, event_frame(room_id, seq, type_, payload))
        for seq, type_, payload in rows.values_list("seq", "type", "payload")
    ]


def heads() -> list[tuple[int, int]]:
    """``(room_id, head_seq)`` of every room with an event (the outbox sweep)."""
    return list(Room.objects.filter(head_seq__gt=0).order_by("pk").values_list("pk", "head_seq"))


def events_after(
    room_id: int, after_seq: int, limit: int, older_than_s: float
) -> list[StoredEvent]:
    """The room's events after ``after_seq`` committed more than ``older_than_s`` ago and
    within ``SWEEP_WINDOW``, in seq order, with what link reach needs of a new message (the
    outbox sweep)."""
    from chat.links import urls_in

    now = timezone.now()
    rows = list(
        RoomEvent.objects.filter(
            room_id=room_id,
            seq__gt=after_seq,
            created_at__lt=now - timedelta(seconds=older_than_s),
            created_at__gte=now - SWEEP_WINDOW,
        )
        .order_by("seq")
        .values_list("seq", "type", "payload")[:limit]
    )
    if not rows:
        return []
    community_id = Room.objects.filter(pk=room_id).values_list("community_id", flat=True).first()
    found = []
    for seq, type_, payload in rows:
        urls: tuple[str, ...] = ()
        if type_ == "message.new" and community_id is not None:  # a DM's links: no reach
            urls = urls_in(str(payload.get("message", {}).get("body", "")))
        found.append(
            StoredEvent(
                room_id, seq, event_frame(room_id, seq, type_, payload), community_id or 0, urls
            )
        )
    return found


class ChatRoomStore:
    """The fan-out tier's ``RoomStore`` hook (``fanout.hooks``), registered at start-up."""

    readers = staticmethod(readers_at_version)
    events_between = staticmethod(events_between)
    heads = staticmethod(heads)
    events_after = staticmethod(events_after)


class ChatAccessFrames:
    """``communities.events``' ``AccessFrames`` hook, registered at start-up: unread counts and
    the protocol's frames for access changes."""

    def unread_for_room(self, room_id: int, user_ids: list[int]) -> dict[int, int]:
        from chat.selectors import unread_for_room

        return unread_for_room(room_id, user_ids)

    def room_added(self, room_id: int, info: dict[str, Any]) -> bytes:
        # ``info`` is ``communities.events.room_info``'s dict: the encoder takes it as a Room.
        return encode(RoomAdded(room=room_id, info=cast(RoomFrame, info)))

    def room_updated(self, room_id: int, info: dict[str, Any]) -> bytes:
        return encode(RoomUpdated(room=room_id, info=cast(RoomFrame, info)))

    def room_removed(self, room_id: int, reason: str) -> bytes:
        return encode(RoomRemoved(room=room_id, reason=cast(RemovedReason, reason)))
