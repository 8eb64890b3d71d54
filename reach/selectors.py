"""Link reach as a caller may see it (docs/api.md, "Link reach"): only the rooms they can read
count, as the report queue shows only reports on those rooms."""

from __future__ import annotations

from communities.models import Community, Room
from communities.selectors import AnyUser, readable_rooms_filter
from reach.store import reach_of


def link_reach_for(*, actor: AnyUser, community: Community, url: str) -> tuple[int, int]:
    """``(reach, shares)`` of the URL over the community's rooms that ``actor`` can read (the
    caller's role is checked by the view). Counts kept before reach was kept per room, whose
    room is unknown, are added only for a caller who reads every room of the community."""
    rooms = Room.objects.filter(community=community)
    readable = set(rooms.filter(readable_rooms_filter(actor)).values_list("pk", flat=True))
    every = set(rooms.values_list("pk", flat=True))
    return reach_of(
        community_id=community.pk, url=url, room_ids=readable, unscoped=readable >= every
    )
