"""PostgreSQL only: the search index, and posting under real concurrency."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.db import connection

from chat import selectors
from chat.models import Message
from chat.services.messages import message_post
from communities.models import Room
from tests.chat.conftest import FanoutCapture, post
from tests.conftest import build_world, in_threads

on_postgresql = pytest.mark.skipif(
    "postgresql" not in settings.DATABASES["default"]["ENGINE"], reason="PostgreSQL only"
)


@on_postgresql
@pytest.mark.django_db
@pytest.mark.usefixtures("no_message_rate")
def test_search_can_use_the_gin_index() -> None:
    world = build_world()
    for i in range(20):
        post(world.users["admin"], world.general, f"message number {i} about owls")
    with connection.cursor() as cursor:
        # A table this small is read sequentially; forbid that to see that the index matches.
        cursor.execute("SET LOCAL enable_seqscan = off")
    plan = selectors.search(user=world.users["member"], q="owls").explain()
    assert "chat_message_body_search" in plan, plan


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("no_message_rate")
def test_concurrent_posts_take_consecutive_seqs(capture_fanout: FanoutCapture) -> None:
    world = build_world()
    authors = [world.users[s] for s in ("owner", "admin", "moderator", "member")] * 3
    results = in_threads(
        [
            lambda user=user, i=i: message_post(
                actor=user, room=world.general, body=f"m{i}", client_msg_id=f"c{i}"
            )
            for i, user in enumerate(authors)
        ]
    )
    seqs = sorted(message.seq for message, created in results if created)
    assert seqs == list(range(1, len(authors) + 1))
    assert Room.objects.get(pk=world.general.pk).head_seq == len(authors)
    # On commit, each message.new left once with its message's seq (in any order across
    # threads: the fan-out tier orders by seq per room).
    assert sorted(e.seq for e in capture_fanout.room_events) == seqs
    assert all(e.frame["message"]["seq"] == e.seq for e in capture_fanout.room_events)


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("no_message_rate")
def test_concurrent_repeats_of_one_client_msg_id_make_one_message(
    capture_fanout: FanoutCapture,
) -> None:
    world = build_world()
    member = world.users["member"]
    results = in_threads(
        [
            lambda: message_post(
                actor=member, room=world.general, body="once", client_msg_id="same"
            )
            for _ in range(8)
        ]
    )
    assert all(not isinstance(result, Exception) for result in results), results
    assert {message.pk for message, _ in results} == {Message.objects.get().pk}
    assert sum(created for _, created in results) == 1
    assert [e.type for e in capture_fanout.room_events] == ["message.new"]
