"""What travels through the fan-out tier: items (publisher -> partition) and batches
(partition -> gateway), as typed msgspec Structs.

An item names a room (or users) and carries its frame encoded once; a batch carries that same
frame and the ids of the users a gateway must write it to. On Redis each travels as a msgpack
array whose first element is its tag (``"r"``, ``"a"``, ``"u"``, ``"c"`` for items, ``"E"``,
``"A"``, ``"U"``, ``"C"`` for batches, ``"B"`` for a bundle of batches): compact, and decoded
straight into the Struct with its types checked, so a malformed entry is refused in one place
(``decode``) instead of failing later in the router.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec


class RoomItem(msgspec.Struct, frozen=True, array_like=True, tag="r"):
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
    sent: float = msgspec.field(default_factory=time.time)
    access_version: int = -1


class AccessItem(msgspec.Struct, frozen=True, array_like=True, tag="a"):
    """Readers of a room changed: revoke or grant for ``user_ids``, then refresh the cache.
    ``head_seq`` and ``version`` are the room's at the change (a grant starts the room live
    after ``head_seq``; a connection ignores an access item not newer than one it applied)."""

    room_id: int
    user_ids: tuple[int, ...]
    frames: tuple[bytes, ...]  # one per user, in the same order
    grant: bool
    head_seq: int = 0
    version: int = 0

    def __post_init__(self) -> None:
        if len(self.user_ids) != len(self.frames):
            raise ValueError("users and frames differ in length")


class UsersItem(msgspec.Struct, frozen=True, array_like=True, tag="u"):
    """An ephemeral frame for all connections of some users (read markers, presence)."""

    user_ids: tuple[int, ...]
    frame: bytes
    partition: int = 0


class CloseItem(msgspec.Struct, frozen=True, array_like=True, tag="c"):
    """Close connections of some users with ``code``: all of them (``credential`` empty: the
    account was disabled), or only those opened with the credential ``credential`` names (a
    non-secret reference of a revoked token)."""

    user_ids: tuple[int, ...]
    code: int
    credential: str = ""
    partition: int = 0


Item = RoomItem | AccessItem | UsersItem | CloseItem


def partition_of(item: Item, partitions: int) -> int:
    key = item.partition if isinstance(item, UsersItem | CloseItem) else item.room_id
    return key % partitions


class EventBatch(msgspec.Struct, frozen=True, array_like=True, tag="E"):
    """Write a room's event (seq > 0) or ephemeral frame (seq 0) to these users' connections."""

    room_id: int
    seq: int
    frame: bytes
    user_ids: tuple[int, ...]
    sent: float = 0.0


class AccessBatch(msgspec.Struct, frozen=True, array_like=True, tag="A"):
    """Revoke (``grant`` False) or grant a room on these users' connections, one frame each."""

    room_id: int
    grant: bool
    head_seq: int
    user_ids: tuple[int, ...]
    frames: tuple[bytes, ...]
    version: int = 0

    def __post_init__(self) -> None:
        if len(self.user_ids) != len(self.frames):
            raise ValueError("users and frames differ in length")


class UsersBatch(msgspec.Struct, frozen=True, array_like=True, tag="U"):
    """An ephemeral frame for every connection of these users."""

    frame: bytes
    user_ids: tuple[int, ...]


class CloseBatch(msgspec.Struct, frozen=True, array_like=True, tag="C"):
    """Close these users' connections with ``code`` (those opened with ``credential`` only,
    when it is not empty)."""

    code: int
    credential: str
    user_ids: tuple[int, ...]


Batch = EventBatch | AccessBatch | UsersBatch | CloseBatch


class Bundle(msgspec.Struct, frozen=True, array_like=True, tag="B"):
    """Several batches for one gateway in one inbox entry, in the order they are applied (what
    one read of a partition holds for that gateway)."""

    batches: tuple[Batch, ...]


class Malformed(ValueError):
    """A stream entry that is not an item or batch of this version (a poison entry)."""


_encoder = msgspec.msgpack.Encoder()
_items = msgspec.msgpack.Decoder(Item)
_batches = msgspec.msgpack.Decoder(Batch | Bundle)
_any = msgspec.msgpack.Decoder(Item | Batch | Bundle)


def encode(obj: Item | Batch | Bundle) -> bytes:
    return _encoder.encode(obj)


def decode_item(data: bytes) -> Item:
    """An item of a partition stream; Malformed for anything else (a batch included)."""
    return _decoded(_items, data)


def decode_batches(data: bytes) -> tuple[Batch, ...]:
    """The batches of a gateway inbox entry, a lone batch or a bundle, in order; Malformed for
    anything else (an item included)."""
    found = _decoded(_batches, data)
    return found.batches if isinstance(found, Bundle) else (found,)


def decode(data: bytes) -> Item | Batch | Bundle:
    return _decoded(_any, data)


def _decoded(decoder: msgspec.msgpack.Decoder[Any], data: bytes) -> Any:
    try:
        return decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError, TypeError) as exc:
        raise Malformed(str(exc)) from exc
