"""Wire shapes of messages, shared by REST answers and socket frames."""

from __future__ import annotations

from collections import Counter
from typing import Any

from django.contrib.auth.models import User

from chat.models import Message, Reaction
from sphere.formats import iso


def user_dict(user: User) -> dict[str, Any]:
    return {"id": user.pk, "username": user.username}


def reactions_summary(reactions: list[Reaction], viewer_id: int | None) -> list[dict[str, Any]]:
    """``[{emoji, count, me}]`` in first-use order; ``me`` relative to ``viewer_id``."""
    counts: Counter[str] = Counter()
    mine: set[str] = set()
    for reaction in sorted(reactions, key=lambda r: (r.created_at, r.pk)):
        counts[reaction.emoji] += 1
        if reaction.user_id == viewer_id:
            mine.add(reaction.emoji)
    return [{"emoji": e, "count": n, "me": e in mine} for e, n in counts.items()]


def thread_summary(message: Message) -> dict[str, Any] | None:
    """A root's ``thread`` (docs/threads.md); None while it has no reply."""
    if not message.thread_reply_count:
        return None
    return {
        "reply_count": message.thread_reply_count,
        "last_reply_at": iso(message.thread_last_reply_at),
        "participants": list(message.thread_participants),
    }


def message_dict(
    message: Message, *, viewer_id: int | None = None, fresh: bool = False
) -> dict[str, Any]:
    """The Message of docs/protocol.md ("Objects"). Reactions come from ``message.reactions``
    (prefetch them for lists; a ``fresh`` message has none yet); in broadcast frames there is
    no viewer and ``me`` is false."""
    # A deleted message keeps its id and seq, and shows nothing else of what it was.
    has_reactions = message.pk and not message.deleted and not fresh
    reactions = list(message.reactions.all()) if has_reactions else []
    return {
        "id": message.pk,
        "room": message.room_id,
        "seq": message.seq,
        "event_seq": message.event_seq,
        "author": user_dict(message.author),
        "body": "" if message.deleted else message.body,
        "reply_to": message.reply_to_id,
        "thread_root": message.thread_root_id,
        "thread": thread_summary(message),
        "mentions": list(message.mentions),
        "reactions": reactions_summary(reactions, viewer_id),
        "created_at": iso(message.created_at),
        "edited_at": iso(message.edited_at),
        "deleted": message.deleted,
    }
