"""Posting, editing and deleting messages (a reader fetches one with
``chat.selectors.message_get_for_reader``)."""

from __future__ import annotations

from concurrent.futures import Future

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone

from chat import writer
from chat.events import append_event, lock_room
from chat.models import Message, Report
from chat.services.limits import automod, check_act_rate
from chat.services.text import clean_client_msg_id
from chat.wire import message_dict
from chat.writer import Send, Stored, clean_body, mention_names
from communities.models import Membership, Room, RoomMember
from communities.roles import Role, can_manage
from communities.selectors import room_can_read
from communities.services.audit import audit_record, user_target
from sphere.errors import Conflict, Forbidden, Muted, NotFound


def _membership(actor: User, room: Room) -> Membership:
    """The actor's membership of the room's community; in a DM, a member's stand-in (a DM has
    no roles and no mutes). NotFound for whoever cannot read the room."""
    if room.community_id is None:
        if not RoomMember.objects.filter(room=room, user=actor).exists():
            raise NotFound("No such room.")
        return Membership(user=actor, role=Role.MEMBER.value)
    membership = Membership.objects.filter(community_id=room.community_id, user=actor).first()
    if membership is None or not room_can_read(user=actor, room=room):
        raise NotFound("No such room.")
    return membership


def _mentions(room: Room, body: str) -> list[int]:
    """Users named as ``@username`` (any case) who can read the room: only the named users
    are looked up."""
    names = mention_names(body)
    if not names:
        return []
    if room.community_id is None:  # a DM: its members
        members = RoomMember.objects.annotate(lower=Lower("user__username")).filter(
            room=room, lower__in=names
        )
        return sorted(set(members.values_list("user_id", flat=True)))
    named = Membership.objects.annotate(lower=Lower("user__username")).filter(
        community_id=room.community_id, lower__in=names
    )
    if room.private:
        named = named.filter(
            Q(role__in=(Role.OWNER.value, Role.ADMIN.value)) | Q(user__room_memberships__room=room)
        )
    return sorted(set(named.values_list("user_id", flat=True)))


def message_post(
    *,
    actor: User,
    room: Room,
    body: str,
    client_msg_id: str,
    reply_to: int | None = None,
    thread_root: int | None = None,
) -> tuple[Message, bool]:
    """Post a message; returns ``(message, created)``. Stored by the group-commit writer
    (``chat.writer``), in the caller's transaction when there is one.

    Idempotent on ``(room, actor, client_msg_id)``: a repeat returns the original message
    whatever the body, mute, slow mode or rate limit says now. Raises NotFound (not a reader),
    Muted, RateLimited (``rate_limited`` or ``slow_mode``, with ``retry_after``), Invalid,
    BlockedContent. Emits ``message.new`` on commit; a flag term opens a Report.
    """
    stored = message_submit(
        actor=actor,
        room_id=room.pk,
        body=body,
        client_msg_id=client_msg_id,
        reply_to=reply_to,
        thread_root=thread_root,
    ).result()
    if not stored.created:
        return Message.objects.select_related("author").get(pk=stored.message_id), False
    message = Message(
        pk=stored.message_id,
        room=room,
        seq=stored.seq,
        event_seq=stored.seq,
        author=actor,
        client_msg_id=client_msg_id,
        body=stored.body,
        reply_to_id=stored.reply_to,
        thread_root_id=stored.thread_root,
        mentions=list(stored.mentions),
        created_at=stored.created_at or timezone.now(),
        deleted=False,
    )
    message._state.adding = False
    message._state.db = "default"
    return message, True


def message_submit(
    *,
    actor: User,
    room_id: int,
    body: str,
    client_msg_id: str,
    reply_to: int | None = None,
    thread_root: int | None = None,
) -> Future[Stored]:
    """Hand a send to the writer without waiting: the future answers as ``message_post``
    does (a ``Stored``, or the error that refused the send). Raises Invalid at once for a
    malformed ``client_msg_id`` (``chat.services.text.clean_client_msg_id``)."""
    clean_client_msg_id(client_msg_id)
    return writer.submit(
        Send(
            actor.pk,
            actor.username,
            room_id,
            body,
            client_msg_id,
            reply_to=reply_to,
            thread_root=thread_root,
        )
    )


def message_edit(*, actor: User, message: Message, body: str) -> Message:
    """The author edits the body. Raises Forbidden (not the author), NotFound (no longer a
    reader), Muted, Invalid, BlockedContent, RateLimited (``SPHERE_RATE_EDITS``), Conflict
    (deleted). Emits ``message.edited``; a flag term the edit brings in opens a Report."""
    if message.author_id != actor.pk:
        raise Forbidden("Only the author can edit a message.")
    membership = _membership(actor, message.room)
    if membership.muted_until is not None and membership.muted_until > timezone.now():
        raise Muted(membership.muted_until)
    body = clean_body(body)
    flags = automod(community=message.room.community, body=body)
    check_act_rate("edit", user_id=actor.pk)
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
    ``message.delete``). Deleting again is a no-op. Raises Forbidden for anyone else, and
    RateLimited past ``SPHERE_RATE_DELETES`` for authors deleting their own messages (a
    moderator's deletions are not rated). Emits ``message.deleted``."""
    room = message.room
    if message.author_id == actor.pk:
        check_act_rate("delete", user_id=actor.pk)
    elif room.community_id is None:
        # A DM has no moderators: site staff (superusers) resolving a report delete.
        if not actor.is_superuser:
            raise Forbidden("You cannot delete this message.")
    else:
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
        if message.author_id != actor.pk and room.community is not None:
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
