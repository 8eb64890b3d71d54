"""Read markers: how far each reader has read in a room."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import transaction

from chat.models import ReadMarker
from chat.protocol import ReadEvent, encode
from chat.services.limits import check_act_rate
from communities.models import Room
from fanout import publish
from sphere.errors import Invalid


def read_marker_move(*, actor: User, room: Room, seq: int) -> ReadMarker:
    """Move the caller's read marker forward to ``seq`` (clamped to the room's head; never
    back). Raises Invalid for a negative ``seq``, RateLimited past ``SPHERE_RATE_READS``. Sends
    ``read`` to the caller's connections on commit when the marker moved (see
    docs/protocol.md)."""
    if seq < 0:
        raise Invalid("seq must be 0 or more.", fields={"seq": ["0 or more."]})
    check_act_rate("read", user_id=actor.pk)
    with transaction.atomic():
        head = Room.objects.filter(pk=room.pk).values_list("head_seq", flat=True).get()
        marker, _ = ReadMarker.objects.select_for_update().get_or_create(room=room, user=actor)
        target = min(seq, head)
        if target > marker.seq:
            marker.seq = target
            marker.save(update_fields=["seq"])
            frame = encode(ReadEvent(room=room.pk, seq=marker.seq))
            transaction.on_commit(
                lambda: publish.publish_to_users(user_ids=[actor.pk], frame=frame)
            )
    return marker
