"""What travels through the fan-out tier: items (publisher -> partition) and batches
(partition -> gateway), with their compact wire form for the Redis transport.

An item names a room (or users) and carries its frame encoded once; a batch carries that same
frame and the ids of the users a gateway must write it to.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import msgspec


@dataclass(frozen=True, slots=True)
class RoomItem:
    """A room's persistent event (seq > 0) or ephemeral frame (seq 0, e.g. typing).

    ``urls`` (normalized, from a new message) are counted for link reach in ``community_id``.
    ``access_version`` is the room's access version when the event was committed; -1 when not
    known (the partition then reads the room's readers afresh).
    """

    room_id: int
    seq: int
    frame: bytes
    exclude_user: int | None = None
    community_id: int = 0
    urls: tuple[str, ...] = ()
    sent: float = field(default_factory=time.time)
    access_version: int = -1


@dataclass(frozen=True, slots=True)
class AccessItem:
    """Readers of a room changed: revoke or grant for ``user_ids``, then refresh the cache.
    ``head_seq`` and ``version`` are the room's at the change (a grant starts the room live
    after ``head_seq``; a connection ignores an access item not newer than one it applied)."""

    room_id: int
    user_ids: tuple[int, ...]
    frames: tuple[bytes, ...]  # one per user, in the same order
    grant: bool
    head_seq: int = 0
    version: int = 0


@dataclass(frozen=True, slots=True)
class UsersItem:
    """An ephemeral frame for all connections of some users (read markers, presence)."""

    user_ids: tuple[int, ...]
    frame: bytes
    partition: int = 0


Item = RoomItem | AccessItem | UsersItem


def partition_of(item: Item, partitions: int) -> int:
    key = item.partition if isinstance(item, UsersItem) else item.room_id
    return key % partitions


@dataclass(frozen=True, slots=True)
class EventBatch:
    """Write a room's event (seq > 0) or ephemeral frame (seq 0) to these users' connections."""

    room_id: int
    seq: int
    frame: bytes
    user_ids: tuple[int, ...]
    sent: float = 0.0


@dataclass(frozen=True, slots=True)
class AccessBatch:
    room_id: int
    grant: bool
    head_seq: int
    user_ids: tuple[int, ...]
    frames: tuple[bytes, ...]
    version: int = 0


@dataclass(frozen=True, slots=True)
class UsersBatch:
    frame: bytes
    user_ids: tuple[int, ...]


Batch = EventBatch | AccessBatch | UsersBatch


class Malformed(ValueError):
    """A stream entry that is not an item or batch of this version (a poison entry)."""


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder()


def pack(obj: Item | Batch) -> bytes:
    if isinstance(obj, RoomItem):
        return _encoder.encode(
            (
                "r",
                obj.room_id,
                obj.seq,
                obj.frame,
                obj.exclude_user,
                obj.community_id,
                obj.urls,
                obj.sent,
                obj.access_version,
            )
        )
    if isinstance(obj, AccessItem):
        return _encoder.encode(
            ("a", obj.room_id, obj.user_ids, obj.frames, obj.grant, obj.head_seq, obj.version)
        )
    if isinstance(obj, UsersItem):
        return _encoder.encode(("u", obj.user_ids, obj.frame, obj.partition))
    if isinstance(obj, EventBatch):
        return _encoder.encode(("E", obj.room_id, obj.seq, obj.frame, obj.user_ids, obj.sent))
    if isinstance(obj, AccessBatch):
        return _encoder.encode(
            ("A", obj.room_id, obj.grant, obj.head_seq, obj.user_ids, obj.frames, obj.version)
        )
    return _encoder.encode(("U", obj.frame, obj.user_ids))


def unpack(data: bytes) -> Item | Batch:
    try:
        raw = _decoder.decode(data)
        kind, *rest = raw
        if kind == "r":
            room_id, seq, frame, exclude, community_id, urls, sent, version = rest
            return RoomItem(
                int(room_id), int(seq), bytes(frame), exclude, int(community_id),
                tuple(str(u) for u in urls), float(sent), int(version),
            )  # fmt: skip
        if kind == "a":
            room_id, user_ids, frames, grant, head_seq, version = rest
            if len(user_ids) != len(frames):
                raise Malformed("users and frames differ in length")
            return AccessItem(
                int(room_id), tuple(map(int, user_ids)), tuple(map(bytes, frames)),
                bool(grant), int(head_seq), int(version),
            )  # fmt: skip
        if kind == "u":
            user_ids, frame, partition = rest
            return UsersItem(tuple(map(int, user_ids)), bytes(frame), int(partition))
        if kind == "E":
            room_id, seq, frame, user_ids, sent = rest
            return EventBatch(
                int(room_id), int(seq), bytes(frame), tuple(map(int, user_ids)), float(sent)
            )
        if kind == "A":
            room_id, grant, head_seq, user_ids, frames, version = rest
            if len(user_ids) != len(frames):
                raise Malformed("users and frames differ in length")
            return AccessBatch(
                int(room_id), bool(grant), int(head_seq), tuple(map(int, user_ids)),
                tuple(map(bytes, frames)), int(version),
            )  # fmt: skip
        if kind == "U":
            frame, user_ids = rest
            return UsersBatch(bytes(frame), tuple(map(int, user_ids)))
    except Malformed:
        raise
    except (msgspec.DecodeError, ValueError, TypeError) as exc:
        raise Malformed(str(exc)) from exc
    raise Malformed(f"unknown kind {kind!r}")
