"""Who is online: users with at least one open connection in a gateway.

The fan-out transport knows (``fanout.transport``): in the embedded mode the connections of
this process, which are all of them; in the scaled mode the registry in Redis, shared by every
gateway.
"""

from __future__ import annotations

from collections.abc import Collection

from communities.selectors import room_reader_ids
from fanout.transport import current as fanout_transport


def online_among(user_ids: Collection[int]) -> set[int]:
    return fanout_transport().online(user_ids)


def online_in_room(*, room_id: int) -> list[int]:
    """The readers of the room who are connected now, sorted."""
    return sorted(online_among(room_reader_ids(room_id=room_id)))
