"""What opening a connection reads and where it goes: a ticket handshake passes the session
cookie by, a message is dispatched without a trip to Channels' shared thread, connections are
accepted at once and opened a few at a time, the ticket is redeemed in one statement on
PostgreSQL, and ``hello``'s rooms and the presence audience are each one query with the same
answers as the ORM's rules."""

from __future__ import annotations

import asyncio
import functools
import threading
from typing import Any

import orjson
import pytest
from channels.testing import WebsocketCommunicator
from django.db import connection

from chat import protocol as p
from chat.gateway import consumer as consumer_module
from chat.gateway.handshake import gateway_stack
from chat.gateway.session import Session
from chat.models import Message, ReadMarker
from chat.presence import presence_audience
from chat.selectors import rooms_for_hello, rooms_with_unread
from communities.events import room_info
from communities.models import Room, RoomMember
from communities.selectors import room_reader_ids, rooms_readable
from communities.services.accounts import ws_ticket_issue, ws_ticket_redeem
from sphere.asgi import application
from tests.chat.conftest import FanoutCapture
from tests.chat.gateway_helpers import TIMEOUT, connect, recv, send, ticket, until
from tests.conftest import World
from tests.factories import CommunityFactory, MembershipFactory, RoomFactory, UserFactory

STANDINGS = ["owner", "admin", "moderator", "member", "outsider", "banned"]


# --- the handshake and the dispatch ------------------------------------------------------------


async def _through_stack(query_string: bytes) -> dict[str, Any]:
    seen: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope | {"the send": send})

    daphne_send = functools.partial(lambda protocol, message: None, object())
    scope = {"type": "websocket", "path": "/ws/v1/", "headers": [], "query_string": query_string}
    await gateway_stack(app)(scope, None, daphne_send)
    assert len(seen) == 1
    return seen[0] | {"daphne's send": daphne_send}


async def test_a_ticket_handshake_does_not_read_the_session() -> None:
    scope = await _through_stack(b"ticket=abc")
    assert "session" not in scope
    assert "user" not in scope
    assert scope["the send"] is scope["daphne's send"]  # no middleware in between


@pytest.mark.django_db
async def test_a_handshake_without_a_ticket_reads_the_session() -> None:
    scope = await _through_stack(b"")
    assert not scope["user"].is_authenticated
    assert "session" in scope


@pytest.mark.django_db(transaction=True)
async def test_frames_are_dispatched_without_closing_old_connections_each_time(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Channels runs ``close_old_connections`` in its one shared thread before every message;
    the gateway, whose database work all runs in worker threads, does not."""
    import channels.consumer

    trips: list[str] = []

    async def counted() -> None:
        trips.append("close_old_connections")

    monkeypatch.setattr(channels.consumer, "aclose_old_connections", counted)
    comm = await connect(world.users["member"])
    await send(comm, {"type": "ping", "ref": "p"})
    assert (await until(comm, "pong"))["ref"] == "p"
    await comm.disconnect()
    assert trips == []


# --- the ticket ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_ticket_is_redeemed_in_one_statement_on_postgresql(
    django_assert_max_num_queries: Any,
) -> None:
    user = UserFactory()
    ticket, _ = ws_ticket_issue(user=user)
    with django_assert_max_num_queries(1 if connection.vendor == "postgresql" else 2):
        assert ws_ticket_redeem(ticket=ticket) == user
    assert ws_ticket_redeem(ticket=ticket) is None


@pytest.mark.django_db
def test_the_ticket_of_a_disabled_account_is_used_up_and_refused() -> None:
    user = UserFactory(is_active=False)
    ticket, _ = ws_ticket_issue(user=user)
    assert ws_ticket_redeem(ticket=ticket) is None
    user.is_active = True
    user.save()
    assert ws_ticket_redeem(ticket=ticket) is None  # it was spent


# --- hello's rooms and the presence audience ----------------------------------------------------


def messages(room: Room, authors: list[Any], *, deleted: tuple[int, ...] = ()) -> None:
    """Messages written directly (what is under test only reads them), seq 1, 2, …."""
    Message.objects.bulk_create(
        Message(
            room=room,
            seq=seq,
            event_seq=seq,
            author=author,
            client_msg_id=f"m{room.pk}-{seq}",
            body="hi",
            deleted=seq in deleted,
        )
        for seq, author in enumerate(authors, start=1)
    )
    Room.objects.filter(pk=room.pk).update(head_seq=len(authors))


@pytest.fixture
def busy(world: World) -> World:
    """The world, with a second community (private, bigger, with a private room of its own),
    messages by several authors (some deleted), read markers, and a room member who left the
    community (no reader for it)."""
    users = world.users
    other = CommunityFactory(visibility="private", slug="zz-other")
    MembershipFactory(community=other, user=users["member"], role="owner")
    MembershipFactory(community=other, user=users["moderator"], role="admin")
    MembershipFactory(community=other, user=users["outsider"])
    for _ in range(5):
        MembershipFactory(community=other)
    hall = RoomFactory(community=other, name="hall")
    den = RoomFactory(community=other, name="den", private=True)
    RoomMember.objects.create(room=den, user=users["outsider"])
    RoomMember.objects.create(room=world.private_room, user=users["outsider"])  # not a member
    RoomFactory(community=world.community, name="annex")
    cast = [users["owner"], users["member"], users["admin"], users["moderator"]]
    messages(world.general, cast * 3, deleted=(2, 7))
    messages(world.private_room, cast[::-1], deleted=(1,))
    messages(hall, [users["member"], users["outsider"]] * 4)
    messages(den, [users["moderator"]] * 3)
    for standing, room, seq in [
        ("member", world.general, 5),
        ("owner", world.general, 12),
        ("moderator", world.private_room, 2),
        ("outsider", hall, 3),
        ("member", hall, 8),
    ]:
        ReadMarker.objects.create(room=room, user=users[standing], seq=seq)
    return world


@pytest.mark.django_db
@pytest.mark.parametrize("standing", STANDINGS)
def test_hello_rooms_are_the_orms_with_their_unread_counts_in_one_query(
    busy: World, standing: str, django_assert_num_queries: Any
) -> None:
    user = busy.users[standing]
    expected = [
        (room_info(room, room.unread), room.access_version) for room in rooms_with_unread(user=user)
    ]
    with django_assert_num_queries(1):
        found = rooms_for_hello(user_id=user.pk)
    assert [(room_info(room, unread), room.access_version) for room, unread in found] == expected
    if standing in ("member", "moderator"):
        assert any(unread for _, unread in found)  # the counts are exercised, not all zero


def audience_room_by_room(user: Any, cap: int) -> set[int]:
    """The rule, one room at a time: the readers of each readable room of at most ``cap``."""
    audience: set[int] = set()
    for room_id in rooms_readable(user=user).values_list("pk", flat=True):
        readers = room_reader_ids(room_id=room_id)
        if len(readers) <= cap:
            audience |= readers
    audience.discard(user.pk)
    return audience


@pytest.mark.django_db
@pytest.mark.parametrize("cap", [0, 2, 3, 4, 5, 6, 500])
@pytest.mark.parametrize("standing", STANDINGS)
def test_the_presence_audience_is_the_readers_of_the_small_rooms_in_one_query(
    busy: World, standing: str, cap: int, settings: Any, django_assert_num_queries: Any
) -> None:
    settings.PRESENCE_MAX_ROOM = cap
    user = busy.users[standing]
    expected = audience_room_by_room(user, cap)
    with django_assert_num_queries(1):
        assert presence_audience(user_id=user.pk) == expected


@pytest.mark.django_db
def test_the_audience_leaves_out_a_room_above_the_cap_but_not_a_small_one_beside_it(
    busy: World, settings: Any
) -> None:
    # general and annex have 5 readers; secret 3 (owner, admin, the moderator, a room member);
    # den 3 (its community's owner and admin, and the outsider, a room member).
    settings.PRESENCE_MAX_ROOM = 3
    users = busy.users
    assert presence_audience(user_id=users["moderator"].pk) == {
        users[standing].pk for standing in ("owner", "admin", "member", "outsider")
    }
    assert presence_audience(user_id=busy.target.pk) == set()


class Socket:
    def __init__(self, user: Any) -> None:
        self.user = user

    def enqueue(self, frame: bytes) -> None:
        pass

    def send_now(self, frame: p.ServerFrame) -> None:
        pass

    async def drain(self) -> None:
        pass


@pytest.mark.django_db
def test_hello_and_the_online_presence_take_three_queries(
    busy: World, capture_fanout: FanoutCapture, django_assert_num_queries: Any
) -> None:
    user = busy.users["moderator"]
    session = Session(Socket(user))
    # The account and token check, the rooms, the presence audience.
    with django_assert_num_queries(3):
        hello = orjson.loads(session._hello(True))
    assert [room["id"] for room in hello["rooms"]] == [
        room.pk for room in rooms_with_unread(user=user)
    ]
    assert session.readable == {room["id"] for room in hello["rooms"]}
    audience = tuple(sorted(presence_audience(user_id=user.pk)))
    assert audience
    assert capture_fanout.user_frames == [
        (
            audience,
            {
                "type": "presence",
                "user": {"id": user.pk, "username": user.username},
                "status": "online",
            },
        )
    ]
    capture_fanout.clear()
    with django_assert_num_queries(3):  # hello's ``online`` reads the audience all the same
        session._hello(False)  # not the user's first connection: nobody is told
    assert capture_fanout.user_frames == []


@pytest.mark.django_db(transaction=True)
async def test_connections_are_accepted_at_once_and_opened_a_few_at_a_time(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(consumer_module, "OPENING_AT_ONCE", 1)
    loop = asyncio.get_running_loop()
    redeeming: list[str] = []
    started = asyncio.Event()
    release = threading.Event()

    def held_redeem(*, ticket: str) -> Any:
        redeeming.append(ticket)
        loop.call_soon_threadsafe(started.set)
        release.wait(TIMEOUT)
        return ws_ticket_redeem(ticket=ticket)

    monkeypatch.setattr(consumer_module, "ws_ticket_redeem", held_redeem)
    tickets = [await ticket(world.users[standing]) for standing in ("member", "admin")]
    comms = [WebsocketCommunicator(application, f"/ws/v1/?ticket={t}") for t in tickets]
    for comm in comms:
        connected, _ = await comm.connect(timeout=TIMEOUT)
        assert connected  # accepted before its turn to open
    await asyncio.wait_for(started.wait(), TIMEOUT)
    gate = consumer_module._opening()
    assert redeeming == tickets[:1]
    assert len(gate._waiters or ()) == 1  # the second waits its turn
    release.set()
    for comm in comms:
        assert (await recv(comm))["type"] == "hello"
        await comm.disconnect()
    assert redeeming == tickets
