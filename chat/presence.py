"""Who is online: users with at least one open connection in a gateway, and who hears of it.

The fan-out transport knows (``fanout.transport``): in the embedded mode the connections of
this process, which are all of them; in the scaled mode the registry in Redis, shared by every
gateway.
"""

from __future__ import annotations

from collections.abc import Collection

from django.conf import settings

from communities.selectors import co_reader_ids, room_reader_ids
from fanout.transport import current as fanout_transport


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
