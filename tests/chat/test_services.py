"""The chat services and selectors, asserted on the database state and the events emitted."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from chat import selectors
from chat.models import Message, Reaction, RoomEvent
from chat.services import messages, reactions, read_markers, reports
from communities.models import Membership, Room
from sphere.errors import Conflict, Forbidden, Invalid, Muted, NotFound, RateLimited
from tests.chat.conftest import FanoutCapture, post
from tests.conftest import World

pytestmark = pytest.mark.django_db


def test_message_post_is_idempotent_and_emits_once(
    world: World, capture_fanout: FanoutCapture
) -> None:
    member = world.users["member"]
    with capture_fanout.committing():
        first, created = messages.message_post(
            actor=member, room=world.general, body="hi", client_msg_id="x"
        )
    assert created
    Membership.objects.filter(user=member).update(muted_until=timezone.now() + timedelta(hours=1))
    with capture_fanout.committing():
        again, created = messages.message_post(
            actor=member, room=world.general, body="other", client_msg_id="x"
        )
    assert not created
    assert (again.pk, again.seq, again.body) == (first.pk, first.seq, "hi")
    assert capture_fanout.types() == ["message.new"]
    assert Message.objects.count() == 1
    with pytest.raises(Muted):
        messages.message_post(actor=member, room=world.general, body="new", client_msg_id="y")


def test_room_events_carry_seq_without_gaps(
    world: World, capture_fanout: FanoutCapture, no_message_rate: None
) -> None:
    member, admin = world.users["member"], world.users["admin"]
    with capture_fanout.committing():
        one = post(member, world.general, "one")
        reactions.reaction_add(actor=admin, message=one, emoji="👍")
        two = post(admin, world.general, "two")
        messages.message_edit(actor=member, message=one, body="one!")
        reactions.reaction_remove(actor=admin, message=one, emoji="👍")
        messages.message_delete(actor=admin, message=two)
        three = post(member, world.general, "three")
    assert [(e.seq, e.type) for e in capture_fanout.room_events] == [
        (1, "message.new"),
        (2, "reaction.added"),
        (3, "message.new"),
        (4, "message.edited"),
        (5, "reaction.removed"),
        (6, "message.deleted"),
        (7, "message.new"),
    ]
    assert (one.seq, two.seq, three.seq) == (1, 3, 7)
    assert Room.objects.get(pk=world.general.pk).head_seq == 7
    stored = list(RoomEvent.objects.filter(room=world.general).values_list("seq", "type"))
    assert stored == [(e.seq, e.type) for e in capture_fanout.room_events]


def test_nothing_is_emitted_for_a_refused_act(world: World, capture_fanout: FanoutCapture) -> None:
    message = post(world.users["admin"], world.general)
    capture_fanout.clear()
    with capture_fanout.committing():
        with pytest.raises(Invalid):
            messages.message_post(
                actor=world.users["member"],
                room=world.general,
                body="x",
                client_msg_id="r",
                reply_to=message.pk + 1000,
            )
        with pytest.raises(Forbidden):
            messages.message_edit(actor=world.users["member"], message=message, body="x")
        with pytest.raises(Forbidden):
            messages.message_delete(actor=world.users["moderator"], message=message)
        with pytest.raises(NotFound):
            reactions.reaction_remove(actor=world.users["member"], message=message, emoji="x")
    assert capture_fanout.room_events == []
    assert Room.objects.get(pk=world.general.pk).head_seq == 1


def test_slow_mode_and_rate_limit_errors_carry_retry_after(world: World, settings: Any) -> None:
    Room.objects.filter(pk=world.general.pk).update(slow_mode_s=60)
    room = Room.objects.get(pk=world.general.pk)
    post(world.users["member"], room)
    with pytest.raises(RateLimited) as slow:
        messages.message_post(actor=world.users["member"], room=room, body="x", client_msg_id="b")
    assert slow.value.code == "slow_mode"
    assert 0 < (slow.value.retry_after or 0) <= 60
    settings.MESSAGE_RATE = "1/min"
    post(world.users["admin"], room)
    with pytest.raises(RateLimited) as fast:
        messages.message_post(actor=world.users["admin"], room=room, body="x", client_msg_id="c")
    assert fast.value.code == "rate_limited"
    assert 0 < (fast.value.retry_after or 0) <= 60


def test_mentions_follow_readers_and_case(world: World) -> None:
    moderator, member = world.users["moderator"], world.users["member"]
    body = f"@{member.username} @{moderator.username.upper()} @nobody_here @{member.username}"
    assert post(world.users["admin"], world.general, body).mentions == sorted(
        [member.pk, moderator.pk]
    )
    assert post(world.users["admin"], world.private_room, body).mentions == [moderator.pk]


def test_reaction_add_is_idempotent(world: World, capture_fanout: FanoutCapture) -> None:
    message = post(world.users["admin"], world.general)
    capture_fanout.clear()
    with capture_fanout.committing():
        for _ in range(2):
            reactions.reaction_add(actor=world.users["member"], message=message, emoji="👍")
    assert capture_fanout.types() == ["reaction.added"]
    assert Reaction.objects.count() == 1


def test_read_marker_move_forward_only_and_clamped(
    world: World, capture_fanout: FanoutCapture
) -> None:
    member = world.users["member"]
    post(world.users["admin"], world.general)
    post(world.users["admin"], world.general)
    with capture_fanout.committing():
        assert read_markers.read_marker_move(actor=member, room=world.general, seq=5).seq == 2
        assert read_markers.read_marker_move(actor=member, room=world.general, seq=1).seq == 2
    assert [frame for _, frame in capture_fanout.user_frames] == [
        {"type": "read", "room": world.general.pk, "seq": 2}
    ]
    with pytest.raises(Invalid):
        read_markers.read_marker_move(actor=member, room=world.general, seq=-1)


def test_report_create_once_per_reporter(world: World) -> None:
    message = post(world.target, world.general)
    report = reports.report_create(actor=world.users["member"], message=message, reason=" x ")
    assert (report.reason, report.status, report.reporter) == ("x", "open", world.users["member"])
    with pytest.raises(Conflict):
        reports.report_create(actor=world.users["member"], message=message, reason="again")


def test_message_get_for_reader_hides_unreadable_messages(world: World) -> None:
    secret = post(world.users["moderator"], world.private_room)
    assert selectors.message_get_for_reader(actor=world.users["admin"], message_id=secret.pk)
    for user in [world.users["member"], world.users["outsider"], world.users["banned"]]:
        with pytest.raises(NotFound):
            selectors.message_get_for_reader(actor=user, message_id=secret.pk)


def test_history_selector_directions(world: World, no_message_rate: None) -> None:
    for i in range(5):
        post(world.users["member"], world.general, str(i))

    def seqs(**kwargs: Any) -> tuple[list[int], bool]:
        page, more = selectors.history(room=world.general, **kwargs)
        return [m.seq for m in page], more

    assert seqs(limit=2) == ([4, 5], True)
    assert seqs(limit=2, before_seq=3) == ([1, 2], False)
    assert seqs(limit=2, after_seq=2) == ([3, 4], True)
    assert seqs(limit=2, after_seq=3) == ([4, 5], False)
    assert seqs(limit=0) == ([5], True)  # at least one


def test_search_selector_hides_unreadable_and_deleted(world: World, no_message_rate: None) -> None:
    visible = post(world.users["admin"], world.general, "apples and pears")
    post(world.users["moderator"], world.private_room, "secret apples")
    gone = post(world.users["admin"], world.general, "rotten apples")
    messages.message_delete(actor=world.users["admin"], message=gone)

    def found(standing: str, q: str = "apples", **kwargs: Any) -> list[int]:
        qs = selectors.search(user=world.users[standing], q=q, **kwargs)
        return [m.pk for m in qs]

    assert found("member") == [visible.pk]
    assert len(found("moderator")) == 2
    assert found("outsider") == []
    assert found("banned") == []
    assert found("member", community_slug="elsewhere") == []
    assert found("member", q="apples pears") == [visible.pk]
    assert found("member", q="APPLES") == [visible.pk]


def test_a_message_s_event_seq_follows_every_event_about_it(world: World) -> None:
    member = world.users["member"]
    message = post(member, world.general, "v1")
    assert message.event_seq == message.seq
    reactions.reaction_add(actor=world.users["admin"], message=message, emoji="👍")
    message.refresh_from_db()
    assert message.event_seq == message.seq + 1
    edited = messages.message_edit(actor=member, message=message, body="v2")
    assert edited.event_seq == message.seq + 2
    reactions.reaction_remove(actor=world.users["admin"], message=edited, emoji="👍")
    deleted = messages.message_delete(actor=member, message=Message.objects.get(pk=message.pk))
    assert deleted.event_seq == message.seq + 4
    head = Room.objects.get(pk=world.general.pk).head_seq
    assert deleted.event_seq == head
    events = RoomEvent.objects.filter(room=world.general).order_by("seq")
    assert [e.type for e in events] == [
        "message.new", "reaction.added", "message.edited", "reaction.removed", "message.deleted",
    ]  # fmt: skip
