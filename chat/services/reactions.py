"""Reactions: adding and removing the caller's own."""

from __future__ import annotations

import emoji as emoji_data
from django.contrib.auth.models import User
from django.db import transaction

from chat.events import append_event, lock_room
from chat.models import Message, Reaction
from chat.services.limits import check_act_rate
from chat.services.text import is_control
from chat.wire import user_dict
from communities.services.access import require_unmuted
from sphere.errors import Conflict, Invalid, NotFound

MAX_EMOJI = 64  # the column's length


def clean_emoji(emoji: str) -> str:
    """A reaction: one Unicode emoji as the ``emoji`` package defines it (``emoji.is_emoji``):
    a single emoji, with or without a skin tone, a flag, a keycap or a ZWJ sequence it lists,
    taken as written (``❤`` and ``❤️`` are two reactions). Invalid otherwise: a short name,
    text, two emoji, or a lone component such as a skin tone."""
    if not _is_emoji(emoji):
        raise Invalid(
            "A reaction is a single Unicode emoji.",
            fields={"emoji": ["One Unicode emoji, such as 👍 or 👍🏽."]},
        )
    return emoji


def _is_emoji(emoji: str) -> bool:
    return (
        len(emoji) <= MAX_EMOJI
        and emoji_data.is_emoji(emoji)
        and emoji_data.EMOJI_DATA[emoji]["status"] != emoji_data.STATUS["component"]
    )


def clean_emoji_lookup(emoji: str) -> str:
    """An emoji to look a reaction up by (to remove it, or list who reacted): a valid one, or
    one that may have been stored before reactions had to be emoji (1 to 64 characters, no
    spaces or control characters; the ZWJ allowed). Invalid otherwise."""
    if _is_emoji(emoji):
        return emoji
    if not 1 <= len(emoji) <= MAX_EMOJI or any(
        ch.isspace() or (is_control(ch) and ch != "\u200d") for ch in emoji
    ):
        return clean_emoji(emoji)  # its error
    return emoji


def reaction_add(*, actor: User, message: Message, emoji: str) -> Message:
    """Add the caller's reaction (a reader's act; adding it again changes nothing).
    Raises Muted, Invalid (not an emoji), RateLimited (``SPHERE_RATE_REACTIONS``), Conflict
    (a deleted message). Emits ``reaction.added``."""
    community_id = message.room.community_id
    if community_id is not None:  # a DM has no mutes
        require_unmuted(user_id=actor.pk, community_id=community_id)
    emoji = clean_emoji(emoji)
    check_act_rate("reaction", user_id=actor.pk)
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
    """Remove the caller's reaction (allowed while muted; a reaction stored before reactions
    had to be emoji can be removed too). Raises Invalid (a bad emoji), RateLimited
    (``SPHERE_RATE_REACTIONS``, shared with adds), NotFound (no such reaction). Emits
    ``reaction.removed``."""
    emoji = clean_emoji_lookup(emoji)
    check_act_rate("reaction", user_id=actor.pk)
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
