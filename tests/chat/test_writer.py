"""The group-commit writer (chat/writer.py): batches keep every rule of a lone post."""

from __future__ import annotations

from concurrent.futures import Future
from datetime import timedelta
from typing import Any

import pytest
from django.db import IntegrityError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from chat import writer
from chat.models import BlockedTerm, Message, Report, RoomEvent
from chat.services.limits import BlockedContent
from chat.writer import Send, Stored, Writer, store_batch
from communities.models import Membership, Room
from sphere.errors import Invalid, Muted, NotFound, RateLimited
from tests.conftest import World
from tests.factories import RoomFactory

TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK")


def send(user: Any, room: Room, body: str, key: str, **kwargs: Any) -> Send:
    return Send(user.pk, user.username, room.pk, body, key, **kwargs)


def seqs_of(room: Room) -> list[int]:
    return list(Message.objects.filter(room=room).order_by("seq").values_list("seq", flat=True))


def assert_no_gap(room: Room) -> None:
    """Events 1..head, no gap; every message's seq is its message.new event's."""
    head = Room.objects.get(pk=room.pk).head_seq
    events = list(RoomEvent.objects.filter(room=room).order_by("seq").values_list("seq", "type"))
    assert [seq for seq, _ in events] == list(range(1, head + 1))
    new = {seq for seq, type_ in events if type_ == "message.new"}
    assert set(seqs_of(room)) == new


def test_a_batch_is_one_transaction_of_the_same_statements_however_many_sends(
    world: World, no_message_rate: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite: eight statements for any batch (rooms locked, memberships, idempotency keys,
    automod terms, the next message id, messages, events, heads). PostgreSQL: two (one reads
    while it locks, one writes), the same for a batch of one and of twenty."""
    member, admin = world.users["member"], world.users["admin"]
    store_batch([send(member, world.general, "warm up", "w")])
    counted = {"statements": 0}
    if connection.vendor == "postgresql":
        import psycopg

        execute = psycopg.Cursor.execute

        def counting_execute(self: Any, *args: Any, **kwargs: Any) -> Any:
            if type(self) is psycopg.Cursor:  # Django's own cursors are counted below
                counted["statements"] += 1
            return execute(self, *args, **kwargs)

        monkeypatch.setattr(psycopg.Cursor, "execute", counting_execute)

    def cost(size: int, tag: str) -> int:
        batch = [
            send(member if i % 2 else admin, world.general, f"m{i}", f"{tag}{i}")
            for i in range(size)
        ]
        counted["statements"] = 0
        with CaptureQueriesContext(connection) as captured:
            outcomes = store_batch(batch)
        assert all(isinstance(o, Stored) for o in outcomes)
        seen = [
            q["sql"]
            for q in captured.captured_queries
            if not q["sql"].startswith(TRANSACTION_CONTROL)
        ]
        return len(seen) + counted["statements"]

    one, twenty = cost(1, "a"), cost(20, "b")
    assert one == twenty
    assert twenty == (2 if connection.vendor == "postgresql" else 8)
    assert seqs_of(world.general) == list(range(1, 23))
    assert_no_gap(world.general)


def test_refusals_in_a_batch_leave_no_gap_and_keep_their_neighbours(
    world: World, no_message_rate: None
) -> None:
    member, outsider = world.users["member"], world.users["outsider"]
    BlockedTerm.objects.create(community=world.community, term="spoiler", action="block")
    BlockedTerm.objects.create(community=world.community, term="heads up", action="flag")
    Membership.objects.filter(user=world.target, community=world.community).update(
        muted_until=timezone.now() + timedelta(hours=1)
    )
    other = RoomFactory(community=world.community, name="other")
    foreign = store_batch([send(member, other, "elsewhere", "f")])[0]
    assert isinstance(foreign, Stored)
    outcomes = store_batch(
        [
            send(member, world.general, "one", "a"),
            send(outsider, world.general, "not a member", "b"),
            send(member, world.general, "a spoiler here", "c"),
            send(world.target, world.general, "muted", "d"),
            send(member, world.general, "   ", "e"),
            send(member, world.general, "bad reply", "f", reply_to=foreign.message_id),
            send(member, world.private_room, "not in the private room", "g"),
            send(member, world.general, "heads up, all", "h"),
            send(member, world.general, "one again", "a"),
        ]
    )
    kinds = [type(o) for o in outcomes]
    assert kinds == [
        Stored, NotFound, BlockedContent, Muted, Invalid, Invalid, NotFound, Stored, Stored,
    ]  # fmt: skip
    first, flagged, twin = outcomes[0], outcomes[7], outcomes[8]
    assert isinstance(first, Stored)
    assert isinstance(flagged, Stored)
    assert isinstance(twin, Stored)
    assert (first.seq, flagged.seq) == (1, 2)
    assert (twin.message_id, twin.created) == (first.message_id, False)
    assert Report.objects.filter(message_id=flagged.message_id, reporter=None).count() == 1
    assert_no_gap(world.general)


def test_a_repeat_is_answered_with_the_original_whatever_the_rest_says_now(
    world: World, settings: Any
) -> None:
    member = world.users["member"]
    original = store_batch([send(member, world.general, "first", "same")])[0]
    assert isinstance(original, Stored)
    Membership.objects.filter(user=member, community=world.community).update(
        muted_until=timezone.now() + timedelta(hours=1)
    )
    settings.MESSAGE_RATE = "0/min"
    again = store_batch([send(member, world.general, "", "same")])[0]
    assert isinstance(again, Stored)
    assert (again.message_id, again.seq, again.created) == (original.message_id, 1, False)


def test_slow_mode_meets_a_second_post_in_the_same_batch(
    world: World, no_message_rate: None
) -> None:
    Room.objects.filter(pk=world.general.pk).update(slow_mode_s=60)
    member, moderator = world.users["member"], world.users["moderator"]
    outcomes = store_batch(
        [
            send(member, world.general, "one", "a"),
            send(member, world.general, "two", "b"),
            send(moderator, world.general, "mod one", "c"),
            send(moderator, world.general, "mod two", "d"),
        ]
    )
    assert [type(o) for o in outcomes] == [Stored, RateLimited, Stored, Stored]
    refused = outcomes[1]
    assert isinstance(refused, RateLimited)
    assert refused.code == "slow_mode"
    assert refused.retry_after is not None
    assert 59 < refused.retry_after <= 60


def test_the_rate_is_spent_only_by_sends_that_passed_every_other_check(
    world: World, settings: Any
) -> None:
    settings.MESSAGE_RATE = "2/min"
    member = world.users["member"]
    outcomes = store_batch(
        [
            send(member, world.general, "   ", "empty"),
            send(member, world.general, "one", "a"),
            send(member, world.general, "two", "b"),
            send(member, world.general, "three", "c"),
        ]
    )
    assert [type(o) for o in outcomes] == [Invalid, Stored, Stored, RateLimited]
    assert_no_gap(world.general)


def test_mentions_name_readers_of_the_room_only(world: World, no_message_rate: None) -> None:
    member, moderator, outsider = (world.users[k] for k in ("member", "moderator", "outsider"))
    body = f"@{member.username.upper()} @{moderator.username} @{outsider.username} @nobody"
    public, private = store_batch(
        [
            send(world.users["admin"], world.general, body, "p"),
            send(world.users["admin"], world.private_room, body, "q"),
        ]
    )
    assert isinstance(public, Stored)
    assert isinstance(private, Stored)
    assert set(public.mentions) == {member.pk, moderator.pk}
    assert set(private.mentions) == {moderator.pk}  # the member cannot read the private room


def test_a_ban_between_a_send_and_its_batch_refuses_the_send(
    world: World, no_message_rate: None
) -> None:
    from communities.services.members import membership_end

    pending = send(world.target, world.general, "too late", "late")
    membership_end(community=world.community, user_id=world.target.pk, reason="banned")
    assert isinstance(store_batch([pending])[0], NotFound)
    assert seqs_of(world.general) == []


@pytest.mark.django_db(transaction=True)
def test_a_failed_batch_is_stored_again_message_by_message(
    monkeypatch: pytest.MonkeyPatch, no_message_rate: None
) -> None:
    """One message that makes its transaction fail costs only itself: its neighbours are
    stored, and the rollback left no seq behind."""
    from tests.conftest import build_world

    world = build_world()
    member = world.users["member"]
    real = writer.batch._write

    def poisoned(batch: Any, reads: Any, accepted: list[Any], outcomes: Any) -> Any:
        if any(a.body == "poison" for a in accepted):
            raise IntegrityError("refused by the database")
        return real(batch, reads, accepted, outcomes)

    monkeypatch.setattr(writer.batch, "_write", poisoned)
    lone = Writer(batch_max=10, linger_s=0)
    try:
        batch = [send(member, world.general, body, body) for body in ("a", "poison", "b")]
        for item in batch:
            item.future = Future()
        lone._store(batch)
        assert batch[1].future is not None
        with pytest.raises(IntegrityError):
            batch[1].future.result(5)
        stored = [item.future.result(5) for item in (batch[0], batch[2]) if item.future]
    finally:
        lone.stop()
    assert [s.seq for s in stored] == [1, 2]
    assert_no_gap(world.general)


@pytest.mark.django_db(transaction=True)
def test_two_writers_racing_one_client_msg_id_store_it_once(no_message_rate: None) -> None:
    """Two processes' writers (two connections) take the same send at once: one message."""
    from tests.conftest import build_world

    world = build_world()
    member = world.users["member"]
    writers = [Writer(batch_max=10, linger_s=0) for _ in range(2)]
    try:
        for attempt in range(20):
            futures = [
                w.submit(send(member, world.general, f"race {attempt}", f"race-{attempt}"))
                for w in writers
            ]
            answers = [f.result(10) for f in futures]
            assert len({a.message_id for a in answers}) == 1
            assert sorted(a.created for a in answers) == [False, True]
    finally:
        for w in writers:
            w.stop()
    assert_no_gap(world.general)
    assert Message.objects.filter(room=world.general).count() == 20


# --- a property: any interleaving of sends, repeats, refusals and bans ----------------------------

USERS = ["member", "moderator", "target", "outsider"]
actions = st.lists(
    st.one_of(
        st.tuples(
            st.just("send"),
            st.sampled_from(USERS),
            st.sampled_from(["general", "secret"]),
            st.sampled_from(["hi", "a spoiler", "  ", "ok then"]),
            st.integers(0, 5),  # client_msg_id: few of them, so repeats happen
        ),
        st.tuples(st.just("ban"), st.sampled_from(USERS)),
        st.just(("flush",)),
    ),
    max_size=40,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(plan=actions)
@example(  # a refused send's twin in the same batch is checked on its own, as if alone
    plan=[("send", "member", "general", "a spoiler", 0), ("send", "member", "general", "hi", 0)]
)
def test_batches_agree_with_posting_one_at_a_time(
    world: World, no_message_rate: None, plan: list[tuple[Any, ...]]
) -> None:
    """Sends are queued and stored in batches cut at random (``flush``), bans land between
    batches; every answer and every seq is what posting each send alone, in order, gives."""
    from django.db import transaction

    from communities.services.members import membership_end

    BlockedTerm.objects.get_or_create(community=world.community, term="spoiler")
    rooms = {"general": world.general, "secret": world.private_room}
    with transaction.atomic():
        members = {u for u in USERS if u != "outsider"}
        readers = {"general": set(members), "secret": {"moderator"}}
        heads = {"general": 0, "secret": 0}
        keys: dict[tuple[str, str, int], tuple[int, bool]] = {}
        pending: list[tuple[Send, tuple[Any, ...]]] = []

        def expected(user: str, room: str, body: str, key: int) -> Any:
            if user not in readers[room]:
                return NotFound
            if (user, room, key) in keys:
                return ("repeat", keys[(user, room, key)][0])
            if not body.strip():
                return Invalid
            if "spoiler" in body:
                return BlockedContent
            heads[room] += 1
            keys[(user, room, key)] = (heads[room], True)
            return ("new", heads[room])

        def flush() -> None:
            if not pending:
                return
            outcomes = store_batch([s for s, _ in pending])
            for (_, want), got in zip(pending, outcomes, strict=True):
                if isinstance(want, tuple):
                    assert isinstance(got, Stored), (want, got)
                    assert (got.seq, got.created) == (want[1], want[0] == "new")
                else:
                    assert type(got) is want
            pending.clear()

        for step in plan:
            if step[0] == "send":
                _, user, room, body, key = step
                author = world.target if user == "target" else world.users[user]
                item = send(author, rooms[room], body, f"k{key}")
                pending.append((item, expected(user, room, body, key)))
            elif step[0] == "ban":
                flush()
                name = step[1]
                who = world.target if name == "target" else world.users[name]
                if name in members:
                    membership_end(community=world.community, user_id=who.pk, reason="banned")
                    members.discard(name)
                    readers["general"].discard(name)
                    readers["secret"].discard(name)
            else:
                flush()
        flush()
        for name, room in rooms.items():
            room.refresh_from_db()
            assert room.head_seq >= heads[name]
            assert seqs_of(room) == list(range(1, heads[name] + 1))
        transaction.set_rollback(True)


def test_the_writer_thread_stores_what_it_is_given(
    transactional_db: Any, no_message_rate: None
) -> None:
    from tests.conftest import build_world

    world = build_world()
    lone = Writer(batch_max=5, linger_s=0.001)
    try:
        futures = [
            lone.submit(send(world.users["member"], world.general, f"m{i}", f"t{i}"))
            for i in range(12)
        ]
        assert [f.result(10).seq for f in futures] == list(range(1, 13))
    finally:
        lone.stop()
    assert not lone.thread.is_alive()


def test_one_batch_mixes_dms_channels_threads_and_both_kinds_of_terms(
    world: World, no_message_rate: None
) -> None:
    from communities.services import dms

    member, target = world.users["member"], world.target
    dm, _ = dms.dm_open(actor=member, user_ids=[target.pk])
    BlockedTerm.objects.create(community=None, term="sitebad", action="block")
    BlockedTerm.objects.create(community=world.community, term="localbad", action="block")
    root = store_batch([send(member, world.general, "root", "root")])[0]
    assert isinstance(root, Stored)
    # One call, one transaction (a failed batch would raise here, not fall back).
    outcomes = store_batch(
            [
                send(member, dm, f"hi @{target.username}", "d1"),
                send(member, world.general, "channel", "c1"),
                Send(target.pk, target.username, world.general.pk, "reply", "t1",
                     thread_root=root.message_id),
                send(target, dm, "so sitebad", "d2"),
                send(member, world.general, "so localbad", "c2"),
                send(member, dm, "so localbad", "d3"),
            ]
        )  # fmt: skip
    assert [type(o).__name__ for o in outcomes] == [
        "Stored", "Stored", "Stored", "BlockedContent", "BlockedContent", "Stored",
    ]  # fmt: skip
    dm_message = Message.objects.get(pk=outcomes[0].message_id)  # type: ignore[union-attr]
    assert dm_message.mentions == [target.pk]
    # The reply took two seqs (its message.new and the root's thread.updated).
    reply = outcomes[2]
    assert isinstance(reply, Stored)
    types = dict(
        RoomEvent.objects.filter(room=world.general, seq__gt=root.seq).values_list("seq", "type")
    )
    assert types[reply.seq] == "message.new"
    assert types[reply.seq + 1] == "thread.updated"
