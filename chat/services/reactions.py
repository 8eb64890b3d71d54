"""Reactions: adding and removing the caller's own."""

from __future__ import annotations

import unicodedata

from django.contrib.auth.models import User
from django.db import transaction

from chat.events import append_event, lock_room
from chat.models import Message, Reaction
from chat.wire import user_dict
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
    Raises Invalid (a bad emoji), Conflict (a deleted message). Emits ``reaction.added``."""
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
    """Remove the caller's reaction. Raises Invalid (a bad emoji), NotFound (no such
    reaction). Emits ``reaction.removed``."""
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
