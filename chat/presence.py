"""Who is online: users with at least one open connection in a gateway.

Embedded mode: the connections of this process's gateway, which are all of them. Scaled mode:
the fan-out tier's registry in Redis, shared by every gateway.
"""

from __future__ import annotations

from collections.abc import Collection

from django.conf import settings

from communities.selectors import room_reader_ids
from fanout.gateway import current_gateway, online_anywhere


def online_among(user_ids: Collection[int]) -> set[int]:
    if settings.SCALED:
        return online_anywhere(user_ids)
    gateway = current_gateway()
    if gateway is None:
        return set()
    return {u for u in user_ids if u in gateway.connections}


def online_in_room(*, room_id: int) -> list[int]:
    """The readers of the room who are connected now, sorted."""
    return sorted(online_among(room_reader_ids(room_id=room_id)))
