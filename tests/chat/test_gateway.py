"""The WebSocket gateway through Channels' communicator, on the whole ASGI application."""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from chat.models import Message
from communities.services import members, moderation
from sphere.asgi import application
from tests.chat.gateway_helpers import (
    ORIGIN,
    closed_with,
    connect,
    quiet,
    recv,
    send,
    ticket,
    until,
)
from tests.conftest import World, build_world

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def world() -> World:
    return build_world("public")


def msg(room: int, cid: str, body: str = "hello", ref: str = "r") -> dict[str, Any]:
    return {"type": "message.send", "room": room, "client_msg_id": cid, "body": body, "ref": ref}


async def test_hello_lists_readable_rooms(world: World) -> None:
    member = await connect(world.users["member"])
    names = {room["name"] for room in member.hello["rooms"]}
    assert names == {"general"}
    assert member.hello["protocol"] == 1
    assert member.hello["heartbeat_s"] == 25
    assert member.hello["user"] == {
        "id": world.users["member"].pk,
        "username": world.users["member"].username,
    }
    admin = await connect(world.users["admin"])
    assert {room["name"] for room in admin.hello["rooms"]} == {"general", "secret"}
    await member.disconnect()
    await admin.disconnect()


async def test_send_ack_and_delivery_to_every_reader(world: World) -> None:
    room = world.general.pk
    alice = await connect(world.users["member"], sync={})
    bob = await connect(world.users["admin"], sync={})
    outsider_comm = await connect(world.users["outsider"], sync={})
    await send(alice, msg(room, "c1", "hi all"))
    ack = await until(alice, "ack")
    assert ack["ref"] == "r"
    assert ack["client_msg_id"] == "c1"
    assert ack["seq"] == 1
    for comm in (alice, bob):
        event = await until(comm, "message.new")
        assert (event["room"], event["seq"], event["message"]["body"]) == (room, 1, "hi all")
        assert event["message"]["author"]["id"] == world.users["member"].pk
    await quiet(outsider_comm, "message.new")  # nothing of the room reached them
    for comm in (alice, bob, outsider_comm):
        await comm.disconnect()


async def test_idempotent_resend_gives_the_same_message_and_no_second_event(world: World) -> None:
    room = world.general.pk
    alice = await connect(world.users["member"], sync={})
    await send(alice, msg(room, "same", "one"))
    first = await until(alice, "ack")
    await until(alice, "message.new")
    await send(alice, msg(room, "same", "two", ref="again"))
    second = await until(alice, "ack")
    assert (second["message_id"], second["seq"]) == (first["message_id"], first["seq"])
    await quiet(alice, "message.new")
    assert await database_sync_to_async(Message.objects.count)() == 1
    await alice.disconnect()


async def test_edit_delete_and_reactions_propagate(world: World) -> None:
    room = world.general.pk
    alice = await connect(world.users["member"], sync={})
    bob = await connect(world.users["moderator"], sync={})
    frames: list[dict[str, Any]] = []  # what bob's connection receives, in order
    await send(alice, msg(room, "m1", "first"))
    message_id = (await until(alice, "ack"))["message_id"]
    await send(alice, {"type": "message.edit", "message_id": message_id, "body": "edited"})
    await until(alice, "ack")
    await send(bob, {"type": "reaction.add", "message_id": message_id, "emoji": "👍"})
    await until(bob, "ack", frames)
    await send(bob, {"type": "reaction.remove", "message_id": message_id, "emoji": "👍"})
    await until(bob, "ack", frames)
    await send(alice, {"type": "message.delete", "message_id": message_id})
    frames.append(await until(bob, "message.deleted", frames))
    # A presence frame may come between them (alice came online just before bob did).
    seen = [f for f in frames if f["type"] not in ("ack", "presence")]
    assert [f["type"] for f in seen] == [
        "message.new",
        "message.edited",
        "reaction.added",
        "reaction.removed",
        "message.deleted",
    ]
    assert [f["seq"] for f in seen] == [1, 2, 3, 4, 5]
    assert seen[1]["message"]["body"] == "edited"
    assert (seen[2]["emoji"], seen[2]["user"]["id"]) == ("👍", world.users["moderator"].pk)
    assert seen[4]["message_id"] == message_id
    await alice.disconnect()
    await bob.disconnect()


async def test_reconnect_with_sync_replays_exactly_the_missed_events(world: World) -> None:
    room = world.general.pk
    alice = await connect(world.users["member"], sync={})
    bob = await connect(world.users["admin"], sync={})
    await send(bob, msg(room, "b1"))
    await until(bob, "ack")  # each send below is committed before the next is sent
    await until(alice, "message.new")
    await alice.disconnect()
    for n in range(2, 6):
        await send(bob, msg(room, f"b{n}", f"missed {n}"))
        await until(bob, "ack")
    alice = await connect(world.users["member"])
    await send(alice, {"type": "sync", "rooms": {str(room): 1}, "ref": "s"})
    replayed: list[dict[str, Any]] = []
    synced = await until(alice, "synced", replayed)
    assert [f["seq"] for f in replayed] == [2, 3, 4, 5]
    assert [f["message"]["body"] for f in replayed] == [f"missed {n}" for n in range(2, 6)]
    assert synced == {"type": "synced", "rooms": {str(room): 5}, "ref": "s"}
    await send(bob, msg(room, "b6"))
    assert (await until(alice, "message.new"))["seq"] == 6
    await alice.disconnect()
    await bob.disconnect()


async def test_ban_sends_room_removed_and_nothing_more(world: World) -> None:
    room = world.general.pk
    target = await connect(world.target, sync={})
    admin = await connect(world.users["admin"], sync={})
    await database_sync_to_async(moderation.ban_create)(
        actor=world.users["moderator"], community=world.community, user_id=world.target.pk
    )
    removed = await until(target, "room.removed")
    assert removed == {"type": "room.removed", "room": room, "reason": "banned"}
    await send(admin, msg(room, "after-ban"))
    await until(admin, "message.new")
    await quiet(target, "message.new")
    await send(target, msg(room, "x"))
    error = await until(target, "error")
    assert error["code"] == "not_found"
    await target.disconnect()
    await admin.disconnect()


async def test_joining_sends_room_added_and_then_live_events(world: World) -> None:
    newcomer = world.users["outsider"]
    comm = await connect(newcomer, sync={})
    await database_sync_to_async(members.community_join)(actor=newcomer, community=world.community)
    added = await until(comm, "room.added")
    assert added["room"] == world.general.pk
    assert added["info"]["name"] == "general"
    admin = await connect(world.users["admin"], sync={})
    await send(admin, msg(world.general.pk, "welcome"))
    assert (await until(comm, "message.new"))["message"]["body"] == "hello"
    await comm.disconnect()
    await admin.disconnect()


async def test_typing_reaches_others_and_read_reaches_own_other_connections(world: World) -> None:
    room = world.general.pk
    user = world.users["member"]
    first = await connect(user, sync={})
    second = await connect(user, sync={})
    other = await connect(world.users["admin"], sync={})
    await send(first, {"type": "typing", "room": room})
    typing = await until(other, "typing")
    assert typing == {
        "type": "typing",
        "room": room,
        "user": {"id": user.pk, "username": user.username},
    }
    await send(other, msg(room, "o1"))
    await until(first, "message.new")
    await send(first, {"type": "read", "room": room, "seq": 1, "ref": "rd"})
    ack = await until(first, "ack")
    assert (ack["ref"], ack["seq"]) == ("rd", 1)
    assert await until(second, "read") == {"type": "read", "room": room, "seq": 1}
    await quiet(first, "read")  # no echo of its own read
    for comm in (first, second, other):
        await comm.disconnect()


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("not json", "bad_frame"),
        ("[1, 2]", "bad_frame"),
        ('"text"', "bad_frame"),
        ('{"type": "teleport"}', "bad_frame"),
        ('{"type": "message.send", "room": 1}', "bad_frame"),
        ('{"type": "message.send", "room": "one", "client_msg_id": "a", "body": "b"}', "bad_frame"),
        ('{"type": "ping", "extra": true}', "bad_frame"),
        ('{"type": "sync", "rooms": {"x": 1}}', "bad_frame"),
        ('{"type": "typing", "room": 999999}', "not_found"),
        (
            '{"type": "message.send", "room": 999999, "client_msg_id": "a", "body": "b"}',
            "not_found",
        ),
        ('{"type": "message.edit", "message_id": 999999, "body": "b"}', "not_found"),
    ],
)
async def test_bad_frames_get_an_error_and_the_connection_keeps_working(
    world: World, raw: str, code: str
) -> None:
    comm = await connect(world.users["member"], sync={})
    neighbour = await connect(world.users["admin"], sync={})
    await comm.send_to(text_data=raw)
    error = await until(comm, "error")
    assert error["code"] == code
    await send(comm, {"type": "ping", "ref": "still"})
    assert await until(comm, "pong") == {"type": "pong", "ref": "still"}
    await send(neighbour, {"type": "ping", "ref": "n"})
    assert (await until(neighbour, "pong"))["ref"] == "n"
    await comm.disconnect()
    await neighbour.disconnect()


async def test_someone_elses_message_cannot_be_edited(world: World) -> None:
    room = world.general.pk
    alice = await connect(world.users["member"], sync={})
    mallory = await connect(world.target, sync={})
    await send(alice, msg(room, "a1", "mine"))
    message_id = (await until(alice, "ack"))["message_id"]
    await send(mallory, {"type": "message.edit", "message_id": message_id, "body": "x", "ref": "e"})
    error = await until(mallory, "error")
    assert (error["code"], error["ref"]) == ("forbidden", "e")
    await alice.disconnect()
    await mallory.disconnect()


async def test_a_frame_over_64_kib_closes_with_1009(world: World) -> None:
    comm = await connect(world.users["member"], sync={})
    await comm.send_to(text_data="x" * (70 * 1024))
    assert await closed_with(comm) == 1009


async def test_bad_and_replayed_tickets_close_with_4401(world: World) -> None:
    comm = WebsocketCommunicator(application, "/ws/v1/?ticket=forged")
    connected, _ = await comm.connect()
    assert connected
    assert await closed_with(comm) == 4401
    value = await ticket(world.users["member"])
    first = WebsocketCommunicator(application, f"/ws/v1/?ticket={value}")
    assert (await first.connect())[0]
    assert (await recv(first))["type"] == "hello"
    replay = WebsocketCommunicator(application, f"/ws/v1/?ticket={value}")
    assert (await replay.connect())[0]
    assert await closed_with(replay) == 4401
    await first.disconnect()


async def test_a_foreign_origin_is_refused_whatever_the_credentials(world: World) -> None:
    value = await ticket(world.users["member"])
    comm = WebsocketCommunicator(
        application, f"/ws/v1/?ticket={value}", headers=[(b"origin", b"https://evil.example")]
    )
    connected, code = await comm.connect()
    assert not connected
    assert code == 403


async def test_cookie_needs_an_allowed_origin(world: World) -> None:
    from django.test import Client

    client = Client()
    await database_sync_to_async(client.force_login)(world.users["member"])
    cookie = (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())
    without = WebsocketCommunicator(application, "/ws/v1/", headers=[cookie])
    assert (await without.connect())[0] is False
    host = (b"host", b"127.0.0.1")
    allowed = WebsocketCommunicator(application, "/ws/v1/", headers=[cookie, ORIGIN, host])
    assert (await allowed.connect())[0]
    assert (await recv(allowed))["user"]["id"] == world.users["member"].pk
    await allowed.disconnect()


async def test_silence_closes_with_4408(world: World, settings: Any) -> None:
    settings.WS_HEARTBEAT_S = 0.1
    comm = await connect(world.users["member"])
    assert await closed_with(comm) == 4408


async def test_an_overflowing_outbound_buffer_closes_with_4429(world: World, settings: Any) -> None:
    comm = await connect(world.users["member"], sync={})
    settings.WS_OUTBOUND_BUFFER = 64
    await send(comm, {"type": "ping", "ref": "x" * 64})
    assert await closed_with(comm) == 4429


async def test_posting_rules_hold_on_the_socket(world: World, settings: Any) -> None:
    from communities.services.members import member_mute
    from communities.services.rooms import room_update

    room = world.general.pk
    member = await connect(world.users["member"], sync={})
    await database_sync_to_async(room_update)(
        actor=world.users["moderator"], room=world.general, changes={"slow_mode_s": 60}
    )
    await send(member, msg(room, "s1"))
    await until(member, "ack")
    await send(member, msg(room, "s2", ref="slow"))
    error = await until(member, "error")
    assert (error["code"], error["ref"]) == ("slow_mode", "slow")
    assert 0 < error["retry_after"] <= 60

    moderator = await connect(world.users["moderator"], sync={})  # exempt from slow mode
    settings.MESSAGE_RATE = "2/min"
    for n in range(2):
        await send(moderator, msg(room, f"mod{n}"))
        await until(moderator, "ack")
    await send(moderator, msg(room, "mod-x", ref="fast"))
    error = await until(moderator, "error")
    assert (error["code"], error["ref"]) == ("rate_limited", "fast")
    assert error["retry_after"] > 0

    await database_sync_to_async(member_mute)(
        actor=world.users["moderator"],
        community=world.community,
        user_id=world.users["member"].pk,
        minutes=5,
    )
    await send(member, msg(room, "s3", ref="muted"))
    assert (await until(member, "error"))["code"] == "muted"
    await send(member, msg(room, "s1", ref="retry"))  # a retry of a sent message still acks
    assert (await until(member, "ack"))["seq"] == 1
    await member.disconnect()
    await moderator.disconnect()


async def test_a_deeply_nested_frame_is_a_bad_frame(world: World) -> None:
    comm = await connect(world.users["member"], sync={})
    await comm.send_to(text_data="[" * 20000 + "]" * 20000)
    assert (await until(comm, "error"))["code"] == "bad_frame"
    await comm.send_to(text_data='{"a":' * 5000 + "1" + "}" * 5000)
    assert (await until(comm, "error"))["code"] == "bad_frame"
    await send(comm, {"type": "ping", "ref": "ok"})
    assert (await until(comm, "pong"))["ref"] == "ok"
    await comm.disconnect()


@pytest.mark.parametrize("origin", [b"http://[::1", b"http://127.0.0.1:99999", b"null", b"::"])
async def test_a_malformed_origin_is_refused(world: World, origin: bytes) -> None:
    value = await ticket(world.users["member"])
    comm = WebsocketCommunicator(
        application, f"/ws/v1/?ticket={value}", headers=[(b"origin", origin)]
    )
    connected, code = await comm.connect()
    assert (connected, code) == (False, 403)


async def test_creating_a_community_gives_its_creator_the_general_room(world: World) -> None:
    from communities.services.communities import community_create

    user = world.users["outsider"]
    comm = await connect(user, sync={})
    community = await database_sync_to_async(community_create)(actor=user, name="Fresh")
    added = await until(comm, "room.added")
    assert (added["info"]["name"], added["info"]["community"]) == ("general", community.slug)
    await send(comm, msg(added["room"], "first"))
    assert (await until(comm, "message.new"))["seq"] == 1
    await comm.disconnect()


async def test_a_room_gained_before_the_first_sync_starts_after_its_head(world: World) -> None:
    room = world.general.pk
    admin = await connect(world.users["admin"], sync={})
    for n in range(3):
        await send(admin, msg(room, f"old{n}"))
        await until(admin, "ack")
    newcomer = await connect(world.users["outsider"])  # not synced yet
    await database_sync_to_async(members.community_join)(
        actor=world.users["outsider"], community=world.community
    )
    added = await until(newcomer, "room.added")
    assert added["info"]["head_seq"] == 3
    await send(newcomer, {"type": "sync", "rooms": {}, "ref": "s"})
    before: list[dict[str, Any]] = []
    await until(newcomer, "synced", before)
    assert [f for f in before if f["type"] == "message.new"] == []
    await send(admin, msg(room, "new"))
    assert (await until(newcomer, "message.new"))["seq"] == 4
    await admin.disconnect()
    await newcomer.disconnect()


async def test_a_sync_seq_past_the_head_is_capped(world: World) -> None:
    room = world.general.pk
    comm = await connect(world.users["member"])
    await send(comm, {"type": "sync", "rooms": {str(room): 999}, "ref": "s"})
    assert (await until(comm, "synced"))["rooms"] == {str(room): 0}
    await send(comm, msg(room, "x"))
    assert (await until(comm, "message.new"))["seq"] == 1
    await comm.disconnect()


async def test_a_big_sync_is_paced_not_closed(world: World, settings: Any) -> None:
    settings.MESSAGE_RATE = "100000/min"
    room = world.general.pk
    admin = await connect(world.users["admin"], sync={})
    for n in range(40):
        await send(admin, msg(room, f"big{n}", "w" * 2000))
        await until(admin, "ack")
    settings.WS_OUTBOUND_BUFFER = 16 * 1024  # the replay is five times the bound
    comm = await connect(world.users["member"])
    await send(comm, {"type": "sync", "rooms": {str(room): 0}, "ref": "s"})
    replayed: list[dict[str, Any]] = []
    assert (await until(comm, "synced", replayed))["rooms"] == {str(room): 40}
    assert [f["seq"] for f in replayed if f["type"] == "message.new"] == list(range(1, 41))
    await admin.disconnect()
    await comm.disconnect()


async def test_a_refused_send_spends_none_of_the_rate(world: World, settings: Any) -> None:
    settings.MESSAGE_RATE = "1/min"
    room = world.general.pk
    comm = await connect(world.users["member"], sync={})
    bad = {**msg(room, "r1", ref="bad"), "reply_to": 999999}
    await send(comm, bad)
    assert (await until(comm, "error"))["code"] == "invalid"
    await send(comm, msg(room, "r2", ref="good"))
    assert (await until(comm, "ack"))["ref"] == "good"
    await comm.disconnect()


async def test_typing_is_throttled_per_user_and_room_across_connections(world: World) -> None:
    room = world.general.pk
    user = world.users["member"]
    first = await connect(user, sync={})
    second = await connect(user, sync={})
    other = await connect(world.users["admin"], sync={})
    await send(first, {"type": "typing", "room": room})
    await send(second, {"type": "typing", "room": room})
    await send(second, {"type": "ping", "ref": "typed"})
    await until(second, "pong")  # both typing frames handled
    # A room event goes through the room's partition after both: every typing frame that was
    # published is before it in the reader's stream.
    await send(first, msg(room, "after-typing"))
    before: list[dict[str, Any]] = []
    await until(other, "message.new", before)
    assert [f for f in before if f["type"] == "typing"] == [
        {"type": "typing", "room": room, "user": {"id": user.pk, "username": user.username}}
    ]
    for comm in (first, second, other):
        await comm.disconnect()


async def test_a_ticket_of_a_disabled_account_closes_with_4509(world: World) -> None:
    from django.contrib.auth.models import User

    user = world.users["member"]
    value = await ticket(user)
    await database_sync_to_async(User.objects.filter(pk=user.pk).update)(is_active=False)
    comm = WebsocketCommunicator(application, f"/ws/v1/?ticket={value}")
    assert (await comm.connect())[0]
    assert await closed_with(comm) == 4509


async def test_a_sync_naming_an_unreadable_room_refuses_it_and_syncs_the_rest(
    world: World,
) -> None:
    room = world.general.pk
    secret = world.private_room.pk  # the member cannot read it
    admin = await connect(world.users["admin"], sync={})
    for n in range(2):
        await send(admin, msg(room, f"pre{n}"))
        await until(admin, "ack")
    comm = await connect(world.users["member"])
    rooms = {str(room): 0, str(secret): 0, "999999": 0}
    await send(comm, {"type": "sync", "rooms": rooms, "ref": "s"})
    before: list[dict[str, Any]] = []
    synced = await until(comm, "synced", before)
    assert synced == {"type": "synced", "rooms": {str(room): 2}, "ref": "s"}
    errors = [f for f in before if f["type"] == "error"]
    assert [(e["code"], e["ref"]) for e in errors] == [("not_found", "s")] * 2
    assert sorted(str(secret) in e["message"] or "999999" in e["message"] for e in errors) == [
        True,
        True,
    ]
    assert [f["seq"] for f in before if f["type"] == "message.new"] == [1, 2]
    await send(admin, msg(room, "live"))
    assert (await until(comm, "message.new"))["seq"] == 3
    await admin.disconnect()
    await comm.disconnect()


async def test_presence_online_and_offline_reach_another_reader(
    world: World, settings: Any
) -> None:
    settings.PRESENCE_GRACE_S = 0.2  # offline comes after the grace (tests/chat/test_presence.py)
    user = world.users["member"]
    watcher = await connect(world.users["admin"], sync={})
    comm = await connect(user, sync={})
    expected = {"id": user.pk, "username": user.username}
    assert await until(watcher, "presence") == {
        "type": "presence",
        "user": expected,
        "status": "online",
    }
    second = await connect(user, sync={})  # not the first connection: no presence
    await second.disconnect()  # not the last one either
    await comm.disconnect()
    assert await until(watcher, "presence") == {
        "type": "presence",
        "user": expected,
        "status": "offline",
    }
    await quiet(watcher, "presence")
    await watcher.disconnect()


async def test_no_presence_through_a_room_above_the_cap(world: World, settings: Any) -> None:
    # general has 5 readers, secret 3 (owner, admin, moderator): with the cap at 3, the
    # moderator's presence goes through secret alone.
    settings.PRESENCE_MAX_ROOM = 3
    admin = await connect(world.users["admin"], sync={})
    member = await connect(world.users["member"], sync={})  # shares only general with admin
    moderator = await connect(world.users["moderator"], sync={})
    # The member's coming online told no one; the moderator's reached the admin through secret.
    first = await until(admin, "presence")
    assert (first["user"]["id"], first["status"]) == (world.users["moderator"].pk, "online")
    # One frame serves the whole audience: had the member been in it, it would be waiting.
    await quiet(member, "presence")
    for comm in (admin, member, moderator):
        await comm.disconnect()


async def test_blocked_content_is_an_error_and_the_connection_keeps_working(
    world: World,
) -> None:
    from chat.models import BlockedTerm

    await database_sync_to_async(BlockedTerm.objects.create)(
        community=world.community, term="darn", action="block"
    )
    room = world.general.pk
    comm = await connect(world.users["member"], sync={})
    await send(comm, msg(room, "b1", "well DARN it", ref="bad"))
    error = await until(comm, "error")
    assert (error["code"], error["ref"]) == ("blocked_content", "bad")
    await send(comm, msg(room, "b2", "well done", ref="good"))
    assert (await until(comm, "ack"))["ref"] == "good"
    assert (await until(comm, "message.new"))["message"]["body"] == "well done"
    assert await database_sync_to_async(Message.objects.count)() == 1
    await comm.disconnect()
