"""Who is online: users with at least one open connection in a gateway, and who hears of it.

The fan-out transport knows (``fanout.transport``): in the embedded mode the connections of
this process, which are all of them; in the scaled mode the registry in Redis, shared by every
gateway.

Presence is debounced (docs/protocol.md, "Presence"): ``online`` is announced at the user's
first connection unless the user comes back within the grace of a close whose ``offline`` is
still pending; ``offline`` only once the user had no connection anywhere for
``PRESENCE_GRACE_S``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection

from django.conf import settings

from communities.selectors import co_reader_ids, room_reader_ids
from fanout.connections import LocalConnections
from fanout.transport import current as fanout_transport

logger = logging.getLogger(__name__)

# The checks waiting out their grace (a task is kept alive only while referenced).
_pending: set[asyncio.Task[None]] = set()


def online_among(user_ids: Collection[int]) -> set[int]:
    return fanout_transport().online(user_ids)


def online_in_room(*, room_id: int) -> list[int]:
    """The readers of the room who are connected now, sorted."""
    return sorted(online_among(room_reader_ids(room_id=room_id)))


def presence_audience(*, user_id: int) -> set[int]:
    """Who is told that the user came online or went offline: the readers of the rooms the
    user reads of at most PRESENCE_MAX_ROOM readers (a bigger room would cost a frame to each
    of its readers per connection), the user excepted. One query, whatever the rooms."""
    audience = co_reader_ids(user_id=user_id, max_readers=settings.PRESENCE_MAX_ROOM)
    audience.discard(user_id)
    return audience


def offline_after_grace(
    gateway: LocalConnections,
    user_id: int,
    token: str,
    announce: Callable[[], Awaitable[None]],
) -> None:
    """After ``PRESENCE_GRACE_S``, ``announce`` the user's offline if the close of ``token``
    is still the last word: no connection of the user anywhere since (``gateway.offline_due``)."""
    task = asyncio.ensure_future(_offline_after(gateway, user_id, token, announce))
    _pending.add(task)
    task.add_done_callback(_pending.discard)


async def _offline_after(
    gateway: LocalConnections,
    user_id: int,
    token: str,
    announce: Callable[[], Awaitable[None]],
) -> None:
    await asyncio.sleep(settings.PRESENCE_GRACE_S)
    try:
        if await gateway.offline_due(user_id, token):
            await announce()
    except Exception:
        logger.exception("presence: the offline of user %s could not be announced", user_id)
