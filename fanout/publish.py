"""The one way events leave the apps: call these on commit.

Frames arrive encoded once; the tier never re-encodes them per recipient. The transport of the
mode (``fanout.transport``) takes each item to its partition: this process's partitions in the
embedded mode (a no-op when no gateway runs here: no connection could receive it), the
partition's Redis stream in the scaled mode, from any process.
"""

from __future__ import annotations

from collections.abc import Sequence

from fanout.items import AccessItem, CloseItem, RoomItem, UsersItem
from fanout.transport import current


def publish_room_event(
    *,
    room_id: int,
    seq: int,
    frame: bytes,
    community_id: int = 0,
    urls: Sequence[str] = (),
    access_version: int = -1,
) -> bool:
    """A persistent room event, for every connection that can read the room. False when the
    transport did not take it at once (it is retried in the background, and the outbox sweep
    publishes it if that fails too). ``access_version``: the room's at the event's commit (-1:
    unknown)."""
    return current().submit(
        RoomItem(
            room_id, seq, frame, None, community_id, tuple(urls), access_version=access_version
        )
    )


def publish_room_events(items: Sequence[RoomItem]) -> bool:
    """Persistent room events already built as items (a committed batch, in commit order),
    handed to the transport in one go: one pipelined append in the scaled mode, one hop to the
    partitions' loop in the embedded mode. May be called from any thread. False when the
    transport did not take them all at once (as for ``publish_room_event``)."""
    if not items:
        return True
    return current().submit_many(items)


def publish_room_frame(*, room_id: int, frame: bytes, exclude_user: int | None = None) -> None:
    """An ephemeral frame (no seq) for the room's readers, e.g. ``typing``."""
    current().submit(RoomItem(room_id, 0, frame, exclude_user))


def publish_access(
    *,
    room_id: int,
    user_ids: Sequence[int],
    frames: Sequence[bytes],
    grant: bool,
    head_seq: int = 0,
    version: int = 0,
) -> None:
    """Readers of a room changed: ``room.removed`` (grant False) or ``room.added`` frames, one
    per user. ``head_seq`` and ``version``: the room's at the change."""
    current().submit(AccessItem(room_id, tuple(user_ids), tuple(frames), grant, head_seq, version))


def publish_to_users(*, user_ids: Sequence[int], frame: bytes) -> None:
    """An ephemeral frame for every connection of these users."""
    if user_ids:
        current().submit(UsersItem(tuple(user_ids), frame, partition=min(user_ids)))


def publish_close(*, user_ids: Sequence[int], code: int, credential: str = "") -> bool:
    """Close connections of these users with ``code``, in every gateway: all of them, or
    (``credential`` not empty) only those opened with that credential. Like a room event it is
    retried in the background when the transport does not take it at once (False)."""
    if not user_ids:
        return True
    return current().submit(CloseItem(tuple(user_ids), code, credential, partition=min(user_ids)))
