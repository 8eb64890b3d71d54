"""The demo seed: users, rooms and a short conversation stored through the services (seqs and
room events as for any message), added once however often it runs."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from chat.models import Message, Reaction, RoomEvent
from communities.models import Community, Room

pytestmark = pytest.mark.django_db


def snapshot() -> tuple[list[tuple[int, int, str]], int, int, list[int]]:
    messages = list(
        Message.objects.order_by("room_id", "seq").values_list("room_id", "seq", "body")
    )
    heads = list(Room.objects.order_by("pk").values_list("head_seq", flat=True))
    return messages, RoomEvent.objects.count(), Reaction.objects.count(), heads


def test_the_demo_has_a_conversation_with_the_services_seqs_and_events() -> None:
    call_command("seed_demo", quiet=True)
    community = Community.objects.get(slug="sphere-lounge")
    general = Room.objects.get(community=community, name="general")
    messages = list(Message.objects.filter(room=general).order_by("seq"))
    assert len(messages) >= 5
    assert len({m.author_id for m in messages}) >= 4  # a conversation, not a monologue
    seqs = [m.seq for m in messages]
    assert seqs == sorted(set(seqs))
    events = dict(RoomEvent.objects.filter(room=general).values_list("seq", "type"))
    for message in messages:
        assert events[message.seq] == "message.new"
    general.refresh_from_db()
    assert general.head_seq == max(events)
    replies = [m for m in messages if m.reply_to_id is not None]
    assert replies
    assert all(m.reply_to_id in {n.pk for n in messages} for m in replies)
    assert any(m.mentions for m in messages)
    reactions = Reaction.objects.filter(message__room=general)
    assert reactions.exists()
    assert RoomEvent.objects.filter(room=general, type="reaction.added").count() == len(reactions)
    assert Message.objects.filter(room__community=community, room__name="random").exists()
    assert not Message.objects.filter(room__name="moderators").exists()


def test_seeding_again_adds_nothing() -> None:
    call_command("seed_demo", quiet=True)
    first = snapshot()
    call_command("seed_demo", quiet=True)
    assert snapshot() == first
