"""Concurrent senders into one room on PostgreSQL: seqs 1..N with no gap, every member
receives them all, in order, once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connection

from chat.models import Message, RoomEvent
from chat.services.messages import message_post
from tests.chat.gateway_helpers import connect, until
from tests.conftest import build_world
from tests.factories import MembershipFactory

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

SENDERS, EACH = 20, 5


def post(user: Any, room: Any, n: int) -> int:
    try:
        message, _ = message_post(actor=user, room=room, body=f"m{n}", client_msg_id=f"c{n}")
        return message.seq
    finally:
        connection.close()


async def test_twenty_concurrent_senders(settings: Any) -> None:
    settings.MESSAGE_RATE = "100000/min"
    world = await sync_to_async(build_world)("public")
    senders = [world.users["member"]] + [
        (await sync_to_async(MembershipFactory)(community=world.community)).user
        for _ in range(SENDERS - 1)
    ]
    room = world.general
    watchers = [await connect(world.users[s], sync={}) for s in ("owner", "admin", "moderator")]

    calls = [
        sync_to_async(post, thread_sensitive=False)(user, room, s * EACH + k)
        for s, user in enumerate(senders)
        for k in range(EACH)
    ]
    seqs = await asyncio.gather(*calls)
    total = SENDERS * EACH
    assert sorted(seqs) == list(range(1, total + 1))
    assert await sync_to_async(Message.objects.filter(room=room).count)() == total
    events = await sync_to_async(
        lambda: list(RoomEvent.objects.filter(room=room).values_list("seq", flat=True))
    )()
    assert sorted(events) == list(range(1, total + 1))

    for comm in watchers:
        received: list[int] = []
        while len(received) < total:
            frame = await until(comm, "message.new")
            received.append(frame["seq"])
        assert received == list(range(1, total + 1))
        await comm.disconnect()


def post_or_refuse(user: Any, room: Any, n: int) -> str:
    from sphere.errors import RateLimited

    try:
        message_post(actor=user, room=room, body=f"s{n}", client_msg_id=f"slow{n}")
        return "posted"
    except RateLimited as exc:
        return exc.code
    finally:
        connection.close()


async def test_slow_mode_holds_against_concurrent_posts(settings: Any) -> None:
    """Eight posts of one member at once into a slow room: exactly one passes."""
    settings.MESSAGE_RATE = "100000/min"
    world = await sync_to_async(build_world)("public")
    room = world.general
    room.slow_mode_s = 60
    await sync_to_async(room.save)(update_fields=["slow_mode_s"])
    member = world.users["member"]
    answers = await asyncio.gather(
        *(sync_to_async(post_or_refuse, thread_sensitive=False)(member, room, n) for n in range(8))
    )
    assert sorted(answers) == ["posted"] + ["slow_mode"] * 7
    assert await sync_to_async(Message.objects.filter(room=room, author=member).count)() == 1
