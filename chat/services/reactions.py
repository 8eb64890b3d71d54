"""Reactions, read markers and reports."""

from __future__ import annotations

import unicodedata

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction

from chat.events import append_event, lock_room
from chat.models import Message, Reaction, ReadMarker, Report
from chat.protocol import encode
from chat.wire import user_dict
from communities.models import Room
from fanout import publish
from sphere.errors import Conflict, Invalid, NotFound


def clean_emoji(emoji: str) -> str:
    """An emoji or short name: 1 to 64 characters, no spaces or control characters."""
    if not 1 <= len(emoji) <= 64 or any(
        ch.isspace() or (unicodedata.category(ch).startswith("C") and ch != "\u200d")
        for ch in emoji
    ):
        raise Invalid("Bad emoji.", fields={"emoji": ["1 to 64 characters, no spaces."]})
    return emoji


def reaction_add(*, actor: User, message: Message, emoji: str) -> Message:
    """Add the caller's reaction (a reader's act; adding it again changes nothing).
    Raises Conflict on a deleted message. Emits ``reaction.added``."""
    emoji = clean_emoji(emoji)
    with transaction.atomic():
        locked = lock_room(message.room_id)
        if Message.objects.filter(pk=message.pk, deleted=True).exists():
            raise Conflict("The message was deleted.")
        _, created = Reaction.objects.get_or_create(message=message, user=actor, emoji=emoji)
        if created:
            _touch(message, locked.head_seq + 1)
            append_event(
                locked,
                "reaction.added",
                {"message_id": message.pk, "emoji": emoji, "user": user_dict(actor)},
            )
    return message


def _touch(message: Message, event_seq: int) -> None:
    """The message's ``event_seq`` becomes the seq of the event about to be appended."""
    message.event_seq = event_seq
    Message.objects.filter(pk=message.pk).update(event_seq=event_seq)


def reaction_remove(*, actor: User, message: Message, emoji: str) -> Message:
    """Remove the caller's reaction (NotFound if there is none). Emits ``reaction.removed``."""
    emoji = clean_emoji(emoji)
    with transaction.atomic():
        locked = lock_room(message.room_id)
        deleted, _ = Reaction.objects.filter(message=message, user=actor, emoji=emoji).delete()
        if not deleted:
            raise NotFound("No such reaction.")
        _touch(message, locked.head_seq + 1)
        append_event(
            locked,
            "reaction.removed",
            {"message_id": message.pk, "emoji": emoji, "user": user_dict(actor)},
        )
    return message


def mark_read(*, actor: User, room: Room, seq: int) -> ReadMarker:
    """Move the caller's read marker forward to ``seq`` (clamped to the room's head; never
    back). Sends ``read`` to the caller's connections on commit."""
    if seq < 0:
        raise Invalid("seq must be 0 or more.", fields={"seq": ["0 or more."]})
    with transaction.atomic():
        head = Room.objects.filter(pk=room.pk).values_list("head_seq", flat=True).get()
        marker, _ = ReadMarker.objects.select_for_update().get_or_create(room=room, user=actor)
        target = min(seq, head)
        if target > marker.seq:
            marker.seq = target
            marker.save(update_fields=["seq"])
            frame = encode({"type": "read", "room": room.pk, "seq": marker.seq})
            transaction.on_commit(
                lambda: publish.publish_to_users(user_ids=[actor.pk], frame=frame)
            )
    return marker


def report_message(*, actor: User, message: Message, reason: str) -> Report:
    """Report a message to the community's moderators; one open report per reporter and
    message (Conflict for a second)."""
    reason = reason.strip()
    if not 1 <= len(reason) <= 1000:
        raise Invalid("A reason is 1 to 1,000 characters.", fields={"reason": ["1 to 1,000."]})
    if message.deleted:
        raise Conflict("The message was deleted.")
    try:
        with transaction.atomic():
            return Report.objects.create(message=message, reporter=actor, reason=reason)
    except IntegrityError as exc:  # the open report of this reporter, concurrent or earlier
        raise Conflict("You already reported this message.") from exc
