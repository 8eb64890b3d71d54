"""Threads: following and unfollowing, and the per-thread read marker (docs/threads.md).

Replies themselves are posted by the writer like any message (``thread_root``), which also
keeps each root's summary and the automatic follows under the room's lock."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import transaction

from chat.models import Message, ThreadFollow
from chat.services.limits import check_act_rate
from communities.models import Room
from sphere.errors import Invalid


def _state(actor: User, root: Message) -> ThreadFollow:
    # A row made for a marker records no choice (None): a later automatic follow still applies.
    state, _ = ThreadFollow.objects.select_for_update().get_or_create(
        user=actor, root=root, defaults={"following": None}
    )
    return state


def thread_follow(*, actor: User, root: Message) -> ThreadFollow:
    """Follow the thread of ``root`` (a top-level message the caller reads: see
    ``chat.selectors.thread_root_for_reader``). Following again changes nothing. Raises
    RateLimited past ``SPHERE_RATE_FOLLOWS``."""
    check_act_rate("follow", user_id=actor.pk)
    with transaction.atomic():
        state = _state(actor, root)
        if state.following is not True:
            state.following = True
            state.save(update_fields=["following"])
    return state


def thread_unfollow(*, actor: User, root: Message) -> ThreadFollow:
    """Stop following. The choice stays: being mentioned in the thread, or its root's author
    being followed automatically, does not bring it back; replying in it does."""
    check_act_rate("follow", user_id=actor.pk)
    with transaction.atomic():
        state = _state(actor, root)
        if state.following is not False:
            state.following = False
            state.save(update_fields=["following"])
    return state


def thread_read(*, actor: User, root: Message, seq: int) -> ThreadFollow:
    """Move the caller's thread marker forward to ``seq`` (clamped to the room's head; never
    back); the thread's ``unread`` counts replies by others after it. Raises Invalid for a
    negative ``seq``, RateLimited past ``SPHERE_RATE_READS``."""
    if seq < 0:
        raise Invalid("seq must be 0 or more.", fields={"seq": ["0 or more."]})
    check_act_rate("read", user_id=actor.pk)
    with transaction.atomic():
        head = Room.objects.filter(pk=root.room_id).values_list("head_seq", flat=True).get()
        state = _state(actor, root)
        target = min(seq, head)
        if target > state.read_seq:
            state.read_seq = target
            state.save(update_fields=["read_seq"])
    return state
