"""Direct messages over the socket (docs/dms.md): events reach exactly the DM's members, in
order, replay through ``sync``; leaving and adding change who gets them at once."""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async

from communities.models import Room
from communities.services import dms
from tests.chat.gateway_helpers import connect, quiet, send, until
from tests.conftest import World, build_world
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def world() -> World:
    return build_world("public")


def msg(room: int, cid: str, body: str = "hello") -> dict[str, Any]:
    return {"type": "message.send", "room": room, "client_msg_id": cid, "body": body, "ref": cid}


async def _open(actor: Any, *others: Any) -> Room:
    room, _ = await database_sync_to_async(dms.dm_open)(
        actor=actor, user_ids=[o.pk for o in others]
    )
    return room


async def test_a_new_dm_reaches_its_members_live_and_nobody_else(world: World) -> None:
    a, b, owner = world.users["member"], world.target, world.users["owner"]
    sock_a, sock_b, sock_owner = [await connect(u, sync={}) for u in (a, b, owner)]
    room = await _open(a, b)
    for sock in (sock_a, sock_b):
        added = await until(sock, "room.added")
        assert added["room"] == room.pk
        assert added["info"]["kind"] == "dm"
        assert added["info"]["community"] is None
        assert [m["id"] for m in added["info"]["members"]] == sorted([a.pk, b.pk])
    for n in range(5):
        await send(sock_a, msg(room.pk, f"c{n}", f"m{n}"))
        await until(sock_a, "ack")
    got = []
    for _ in range(5):
        got.append(await until(sock_b, "message.new"))
    assert [f["seq"] for f in got] == [1, 2, 3, 4, 5]
    assert [f["message"]["body"] for f in got] == [f"m{n}" for n in range(5)]
    # The community's owner reads no DM it is not in: nothing arrives, a send is not_found.
    await quiet(sock_owner, "room.added", "message.new")
    await send(sock_owner, msg(room.pk, "x"))
    assert (await until(sock_owner, "error"))["code"] == "not_found"
    for sock in (sock_a, sock_b, sock_owner):
        await sock.disconnect()


async def test_hello_lists_dms_and_sync_replays_them(world: World) -> None:
    a, b = world.users["member"], world.target
    room = await _open(a, b)
    sock_a = await connect(a, sync={})
    for n in range(3):
        await send(sock_a, msg(room.pk, f"c{n}", f"m{n}"))
        await until(sock_a, "ack")
    sock_b = await connect(b)
    listed = {r["id"]: r for r in sock_b.hello["rooms"]}
    assert listed[room.pk]["kind"] == "dm"
    assert listed[room.pk]["unread"] == 3
    assert [m["username"] for m in listed[room.pk]["members"]] == [
        u.username for u in sorted((a, b), key=lambda u: u.pk)
    ]
    assert a.pk in sock_b.hello["online"]  # a DM member counts as sharing a room
    await send(sock_b, {"type": "sync", "rooms": {str(room.pk): 1}, "ref": "s"})
    replayed: list[dict[str, Any]] = []
    synced = await until(sock_b, "synced", replayed)
    assert [f["seq"] for f in replayed if f["type"] == "message.new"] == [2, 3]
    assert synced["rooms"][str(room.pk)] == 3
    await sock_a.disconnect()
    await sock_b.disconnect()


async def test_leaving_a_group_dm_removes_it_at_once_and_updates_the_others(
    world: World,
) -> None:
    a, b, c = world.users["member"], world.target, world.users["admin"]
    room = await _open(a, b, c)
    socks = {u.pk: await connect(u, sync={}) for u in (a, b, c)}
    await database_sync_to_async(dms.dm_leave)(actor=c, room=room)
    removed = await until(socks[c.pk], "room.removed")
    assert removed == {"type": "room.removed", "room": room.pk, "reason": "left"}
    for user in (a, b):
        updated = await until(socks[user.pk], "room.updated")
        assert [m["id"] for m in updated["info"]["members"]] == sorted([a.pk, b.pk])
    await send(socks[a.pk], msg(room.pk, "after"))
    await until(socks[b.pk], "message.new")
    await quiet(socks[c.pk], "message.new")
    await send(socks[c.pk], msg(room.pk, "late"))
    assert (await until(socks[c.pk], "error"))["code"] == "not_found"
    for sock in socks.values():
        await sock.disconnect()


async def test_an_added_member_gets_the_dm_and_its_events(world: World) -> None:
    a, b, c = world.users["member"], world.target, world.users["admin"]
    newcomer = await database_sync_to_async(MembershipFactory)(community=world.community)
    room = await _open(a, b, c)
    sock_a = await connect(a, sync={})
    sock_new = await connect(newcomer.user, sync={})
    await send(sock_a, msg(room.pk, "before"))
    await until(sock_a, "ack")
    await database_sync_to_async(dms.dm_member_add)(actor=a, room=room, user_id=newcomer.user.pk)
    added = await until(sock_new, "room.added")
    assert added["info"]["head_seq"] == 1
    assert newcomer.user.pk in [m["id"] for m in added["info"]["members"]]
    updated = await until(sock_a, "room.updated")
    assert len(updated["info"]["members"]) == 4
    await send(sock_a, msg(room.pk, "after", "welcome"))
    live = await until(sock_new, "message.new")
    assert (live["seq"], live["message"]["body"]) == (2, "welcome")
    await sock_a.disconnect()
    await sock_new.disconnect()


async def test_typing_and_reads_stay_among_members(world: World) -> None:
    a, b, owner = world.users["member"], world.target, world.users["owner"]
    room = await _open(a, b)
    sock_a, sock_b, sock_owner = [await connect(u, sync={}) for u in (a, b, owner)]
    await send(sock_a, {"type": "typing", "room": room.pk})
    typing = await until(sock_b, "typing")
    assert typing["user"]["id"] == a.pk
    await quiet(sock_owner, "typing")
    for sock in (sock_a, sock_b, sock_owner):
        await sock.disconnect()


async def test_a_send_to_a_dm_this_connection_has_not_heard_of_yet_is_stored(
    world: World,
) -> None:
    """A client may send as soon as ``POST /dms/`` answered, before its ``room.added``: here
    the DM is made with no ``room.added`` at all, so the connection cannot know of it."""
    a, b = world.users["member"], world.target

    def quietly_made_dm() -> Room:
        room = Room.objects.create(kind="dm", dm_key=dms.dm_key({a.pk, b.pk}), private=True)
        for user in (a, b):
            room.room_members.create(user=user)
        return room

    sock = await connect(a, sync={})
    room = await database_sync_to_async(quietly_made_dm)()
    await send(sock, msg(room.pk, "early"))
    ack = await until(sock, "ack")
    assert (ack["client_msg_id"], ack["seq"]) == ("early", 1)
    await sock.disconnect()
