"""Live access changes: who gains or loses a room, sent on commit through the fan-out tier.

A service snapshots the rooms a user (or the readers a room) had before its change and hands
the snapshot back after it, inside its transaction; the difference becomes ``room.added`` and
``room.removed`` frames. Each change raises the room's ``access_version`` under its row lock,
the lock under which room events take their seqs: an event committed after the change carries
the new version, so the tier re-reads the readers before routing it even when the change's own
item is published after it, and connections ignore an access item older than one they applied.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from django.db import transaction

from communities.models import Community, Room
from communities.selectors import dm_members, readable_rooms_filter, room_reader_ids
from fanout import publish
from sphere.formats import iso


class AccessFrames(Protocol):
    """What this module needs of the chat app, which registers it at start-up: unread counts
    (messages are chat's) and the frames of the socket protocol (``chat/protocol.py``, whose
    types ``communities`` may not import)."""

    def unread_for_room(self, room_id: int, user_ids: list[int]) -> dict[int, int]:
        """``{user_id: unread}`` for these readers of the room."""

    def room_added(self, room_id: int, info: dict[str, Any]) -> bytes: ...

    def room_updated(self, room_id: int, info: dict[str, Any]) -> bytes: ...

    def room_removed(self, room_id: int, reason: str) -> bytes: ...


class _Hooks:
    def __init__(self) -> None:
        self._frames: AccessFrames | None = None

    def register(self, frames: AccessFrames) -> None:
        self._frames = frames

    @property
    def frames(self) -> AccessFrames:
        if self._frames is None:
            raise RuntimeError("no AccessFrames registered with communities.events (the chat app)")
        return self._frames


hooks = _Hooks()


def room_info(
    room: Room, unread: int, members: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The Room of docs/protocol.md; a DM's ``members`` are read unless given."""
    dm = room.community_id is None
    if dm and members is None:
        members = dm_members([room.pk]).get(room.pk, [])
    return {
        "id": room.pk,
        "kind": Room.Kind.DM.value if dm else Room.Kind.CHANNEL.value,
        "community": room.community.slug if room.community is not None else None,
        "members": members if dm else None,
        "name": room.name,
        "topic": room.topic,
        "private": room.private,
        "slow_mode_s": room.slow_mode_s,
        "head_seq": room.head_seq,
        "unread": unread,
        "created_at": iso(room.created_at),
    }


def _user_rooms(user_id: int, community_id: int) -> set[int]:
    from django.contrib.auth.models import User

    user = User(pk=user_id)
    return set(
        Room.objects.filter(readable_rooms_filter(user), community_id=community_id)
        .values_list("pk", flat=True)
        .distinct()
    )


def track_user(*, user_id: int, community: Community) -> Callable[[str], None]:
    """Snapshot the user's rooms in ``community``; call the result with the reason for a loss
    (``left``, ``kicked``, ``banned``, ``removed``) after the change, inside its transaction."""
    before = _user_rooms(user_id, community.pk)

    def finish(reason: str) -> None:
        after = _user_rooms(user_id, community.pk)
        # Rooms are locked in id order, as every service that locks several does.
        for room_id in sorted(before ^ after):
            if room_id in before:
                _on_commit_revoke(room_id, [user_id], reason)
            else:
                _on_commit_grant(room_id, [user_id])

    return finish


def track_room(*, room: Room) -> Callable[[str], None]:
    """Snapshot the room's readers; call the result after the change (a deleted room has no
    readers left) with the reason for those who lost it."""
    before = room_reader_ids(room_id=room.pk)
    room_id, version = room.pk, room.access_version

    def finish(reason: str) -> None:
        after = room_reader_ids(room_id=room_id)
        if before - after:
            _on_commit_revoke(room_id, sorted(before - after), reason, version)
        if after - before:
            _on_commit_grant(room_id, sorted(after - before))

    return finish


def grant_room_to_readers(*, room: Room) -> None:
    """A new room: ``room.added`` on commit for everyone who can read it (inside the
    creating transaction)."""
    _on_commit_grant(room.pk, sorted(room_reader_ids(room_id=room.pk)))


def room_updated(*, room: Room) -> None:
    """Send ``room.updated`` with the room as it is now to its readers, on commit: one frame
    per distinct unread count, each published once for all the readers it fits."""
    room_id = room.pk

    def send() -> None:
        current = Room.objects.select_related("community").filter(pk=room_id).first()
        if current is None:
            return
        readers = sorted(room_reader_ids(room_id=room_id))
        frames = hooks.frames
        unread = frames.unread_for_room(room_id, readers)
        by_count: dict[int, list[int]] = {}
        for user_id in readers:
            by_count.setdefault(unread.get(user_id, 0), []).append(user_id)
        for count, user_ids in by_count.items():
            frame = frames.room_updated(room_id, room_info(current, count))
            publish.publish_to_users(user_ids=user_ids, frame=frame)

    transaction.on_commit(send)


def _bump(room_id: int, fallback: int) -> tuple[int, int]:
    """Raise the room's access version under its row lock; returns (version, head_seq). A
    room deleted in this transaction has no row: its last version plus one, and no head."""
    locked = Room.objects.select_for_update().filter(pk=room_id).only("access_version", "head_seq")
    room = locked.first()
    if room is None:
        return fallback + 1, 0
    room.access_version += 1
    Room.objects.filter(pk=room_id).update(access_version=room.access_version)
    return room.access_version, room.head_seq


def _on_commit_revoke(room_id: int, user_ids: list[int], reason: str, version: int = 0) -> None:
    version, head_seq = _bump(room_id, version)
    frame = hooks.frames.room_removed(room_id, reason)
    transaction.on_commit(
        lambda: publish.publish_access(
            room_id=room_id,
            user_ids=user_ids,
            frames=[frame] * len(user_ids),
            grant=False,
            head_seq=head_seq,
            version=version,
        )
    )


def _on_commit_grant(room_id: int, user_ids: list[int]) -> None:
    """Inside the change's transaction: the version and the head are those at the change, so
    the tier starts the room live exactly after the events its new readers could not read."""
    version, head_seq = _bump(room_id, 0)
    room = Room.objects.select_related("community").filter(pk=room_id).first()
    if room is None:
        return
    access = hooks.frames
    unread = access.unread_for_room(room_id, user_ids)
    frames = [
        access.room_added(room_id, room_info(room, unread.get(user_id, 0))) for user_id in user_ids
    ]
    transaction.on_commit(
        lambda: publish.publish_access(
            room_id=room_id,
            user_ids=user_ids,
            frames=frames,
            grant=True,
            head_seq=head_seq,
            version=version,
        )
    )
