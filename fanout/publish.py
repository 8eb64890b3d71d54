"""The one way events leave the apps: call these on commit.

Frames arrive encoded once; the tier never re-encodes them per recipient. Embedded mode: the
item goes to this process's partitions (a no-op when no gateway runs here: no connection could
receive it). Scaled mode: it goes to its partition's Redis stream, from any process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from django.conf import settings

from fanout import metrics
from fanout.hub import current_hub
from fanout.items import AccessItem, Item, RoomItem, UsersItem

logger = logging.getLogger(__name__)


def _submit(item: Item) -> bool:
    if not settings.SCALED:
        hub = current_hub()
        if hub is not None:
            hub.submit(item)
        return True
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is not None:
        # Called from a gateway's event loop (typing, presence): publish off the loop.
        loop.run_in_executor(None, _publish_or_retry, item)
        return True
    return _publish_or_retry(item)


def _publish_or_retry(item: Item) -> bool:
    from fanout import streams

    if streams.publish(item):
        return True
    if isinstance(item, AccessItem):
        streams.retrier.add(item)
    elif isinstance(item, UsersItem) or item.seq == 0:
        # Ephemeral (read markers, presence, typing): nothing republishes it.
        metrics.DROPS.labels("publish_failed").inc()
    return False


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
    transport did not take it (the outbox sweep publishes it later). ``access_version``: the
    room's at the event's commit (-1: unknown)."""
    return _submit(
        RoomItem(
            room_id, seq, frame, None, community_id, tuple(urls), access_version=access_version
        )
    )


def publish_room_frame(*, room_id: int, frame: bytes, exclude_user: int | None = None) -> None:
    """An ephemeral frame (no seq) for the room's readers, e.g. ``typing``."""
    _submit(RoomItem(room_id, 0, frame, exclude_user))


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
    _submit(AccessItem(room_id, tuple(user_ids), tuple(frames), grant, head_seq, version))


def publish_to_users(*, user_ids: Sequence[int], frame: bytes) -> None:
    """An ephemeral frame for every connection of these users."""
    if user_ids:
        _submit(UsersItem(tuple(user_ids), frame, partition=min(user_ids)))
