"""Posting, editing and deleting messages (a reader fetches one with
``chat.selectors.message_get_for_reader``)."""

from __future__ import annotations

import re

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models.functions import Lower
from django.utils import timezone

from chat.events import append_event, lock_room
from chat.models import Message, Report
from chat.services.limits import automod, check_message_rate, check_slow_mode
from chat.wire import message_dict
from communities.models import Membership, Room, RoomMember
from communities.roles import Role, at_least, can_manage
from communities.selectors import room_can_read, room_reader_ids
from communities.services.audit import audit_record, user_target
from sphere.errors import Conflict, Forbidden, Invalid, Muted, NotFound

MAX_BODY = 4000
MENTION_RE = re.compile(r"(?<![\w@])@([A-Za-z0-9_]{3,32})\b")


def clean_body(body: str) -> str:
    body = body.strip()
    if not 1 <= len(body) <= MAX_BODY:
        raise Invalid(
            "A message is 1 to 4,000 characters.",
            fields={"body": [f"1 to {MAX_BODY} characters after trimming."]},
        )
    if "\x00" in body:
        raise Invalid("NUL characters are not allowed.", fields={"body": ["No NUL characters."]})
    return body


def _membership(actor: User, room: Room) -> Membership:
    membership = Membership.objects.filter(community_id=room.community_id, user=actor).first()
    if membership is None or not room_can_read(user=actor, room=room):
        raise NotFound("No such room.")
    return membership


def _mentions(room: Room, body: str) -> list[int]:
    """Users named as ``@username`` (any case) who can read the room."""
    names = {name.lower() for name in MENTION_RE.findall(body)}
    if not names:
        return []
    named = User.objects.annotate(lower=Lower("username")).filter(lower__in=names)
    return sorted(set(named.values_list("pk", flat=True)) & room_reader_ids(room_id=room.pk))


def message_post(
    *, actor: User, room: Room, body: str, client_msg_id: str, reply_to: int | None = None
) -> tuple[Message, bool]:
    """Post a message; returns ``(message, created)``.

    Idempotent on ``(room, actor, client_msg_id)``: a repeat returns the original message
    whatever the body, mute, slow mode or rate limit says now. Raises NotFound (not a reader),
    Muted, RateLimited (``rate_limited`` or ``slow_mode``, with ``retry_after``), Invalid,
    BlockedContent. Emits ``message.new`` on commit; a flag term opens a Report.
    """
    if not 1 <= len(client_msg_id) <= 64:
        raise Invalid(
            "client_msg_id is 1 to 64 characters.",
            fields={"client_msg_id": ["1 to 64 characters."]},
        )
    membership = _poster_membership(actor, room)
    with transaction.atomic():
        # Every check runs under the room lock: a concurrent twin of this send is committed
        # or waiting, and concurrent posts of one author meet slow mode one at a time.
        locked = lock_room(room.pk)
        existing = _existing(room, actor, client_msg_id)
        if existing is not None:
            return existing, False
        body = clean_body(body)
        if membership.muted_until is not None and membership.muted_until > timezone.now():
            raise Muted("You are muted in this community.")
        if not at_least(membership.role, Role.MODERATOR):
            check_slow_mode(room=locked, user_id=actor.pk)
        flags = automod(community=room.community, body=body)
        parent = None
        if reply_to is not None:
            parent = Message.objects.filter(pk=reply_to, room=room).only("pk").first()
            if parent is None:
                raise _bad_reply()
        check_message_rate(user_id=actor.pk)  # last: a refused send spends none of the budget
        message = Message.objects.create(
            room=locked,
            seq=locked.head_seq + 1,
            event_seq=locked.head_seq + 1,
            author=actor,
            client_msg_id=client_msg_id,
            body=body,
            reply_to=parent,
            mentions=_mentions(room, body),
        )
        append_event(
            locked,
            "message.new",
            {"message": message_dict(message, fresh=True)},
            urls=_urls(body),
        )
        if flags:
            Report.objects.create(
                message=message, reporter=None, reason="automod: " + ", ".join(flags)
            )
    return message, True


def _poster_membership(actor: User, room: Room) -> Membership:
    """The actor's membership if they can read the room (one query for a public room);
    NotFound alike for a missing room, a non-member and a private room they cannot read."""
    membership = (
        Membership.objects.filter(community_id=room.community_id, user=actor)
        .only("role", "muted_until")
        .first()
    )
    if membership is None:
        raise NotFound("No such room.")
    if (
        room.private
        and not at_least(membership.role, Role.ADMIN)
        and not RoomMember.objects.filter(room=room, user=actor).exists()
    ):
        raise NotFound("No such room.")
    return membership


def _bad_reply() -> Invalid:
    return Invalid(
        "reply_to is not a message of this room.",
        fields={"reply_to": ["Not a message of this room."]},
    )


def _existing(room: Room, actor: User, client_msg_id: str) -> Message | None:
    mine = Message.objects.filter(room=room, author=actor, client_msg_id=client_msg_id)
    # Nearly every send is new: ask first with the cheapest query, fetch only a repeat.
    if not mine.exists():
        return None
    return mine.select_related("author").first()


def message_edit(*, actor: User, message: Message, body: str) -> Message:
    """The author edits the body. Raises Forbidden (not the author), NotFound (no longer a
    reader), Muted, Invalid, BlockedContent, Conflict (deleted). Emits ``message.edited``; a
    flag term the edit brings in opens a Report."""
    if message.author_id != actor.pk:
        raise Forbidden("Only the author can edit a message.")
    membership = _membership(actor, message.room)
    if membership.muted_until is not None and membership.muted_until > timezone.now():
        raise Muted("You are muted in this community.")
    body = clean_body(body)
    flags = automod(community=message.room.community, body=body)
    with transaction.atomic():
        locked = lock_room(message.room_id)
        message = Message.objects.select_for_update().select_related("author").get(pk=message.pk)
        if message.deleted:
            raise Conflict("The message was deleted.")
        message.body = body
        message.edited_at = timezone.now()
        message.mentions = _mentions(locked, body)
        message.event_seq = locked.head_seq + 1  # the seq of the edit's event, below
        message.save(update_fields=["body", "edited_at", "mentions", "event_seq"])
        append_event(locked, "message.edited", {"message": message_dict(message)})
        if flags:  # an edit that brings a flag term in opens a report as a post does
            Report.objects.get_or_create(
                message=message,
                reporter=None,
                status=Report.Status.OPEN,
                defaults={"reason": "automod: " + ", ".join(flags)},
            )
    return message


def message_delete(*, actor: User, message: Message) -> Message:
    """Soft-delete: the author, or a moderator and up who outranks the author (audited as
    ``message.delete``). Deleting again is a no-op. Raises Forbidden for anyone else. Emits
    ``message.deleted``."""
    room = message.room
    if message.author_id != actor.pk:
        mine = Membership.objects.filter(community_id=room.community_id, user=actor).first()
        theirs = Membership.objects.filter(
            community_id=room.community_id, user_id=message.author_id
        ).first()
        if mine is None or not can_manage(mine.role, theirs.role if theirs else None):
            raise Forbidden("You cannot delete this message.")
    with transaction.atomic():
        locked = lock_room(room.pk)
        message = Message.objects.select_for_update().select_related("author").get(pk=message.pk)
        if message.deleted:
            return message
        message.deleted = True
        message.body = ""
        message.mentions = []  # named in the body, which is gone
        message.event_seq = locked.head_seq + 1
        message.save(update_fields=["deleted", "body", "mentions", "event_seq"])
        append_event(locked, "message.deleted", {"message_id": message.pk})
        if message.author_id != actor.pk:
            audit_record(
                actor=actor,
                community=room.community,
                action="message.delete",
                target=user_target(message.author),
                detail={"message": message.pk, "room": room.pk},
            )
    return message


def _urls(body: str) -> tuple[str, ...]:
    """The message's links, for link reach (counted when the fan-out tier routes the event)."""
    from chat.links import urls_in

    return urls_in(body)
