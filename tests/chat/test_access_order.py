"""Access changes against room events published out of commit order.

A change of who reads a room and a message committed after it publish from two threads, in
either order. The room's access version, raised under the room lock with every change, keeps
guarantee 5 whatever the order: nothing committed after a kick reaches the kicked user, and a
grant that arrives late or twice never reopens a room revoked since."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from channels.db import database_sync_to_async

from chat.services.messages import message_post
from communities.services import members
from fanout import publish
from tests.chat.gateway_helpers import connect, quiet, send, until
from tests.conftest import World, build_world

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def world() -> World:
    return build_world("public")


async def warm(world: World, *readers: Any) -> None:
    """A message routed before the change: the partition has the room's readers cached."""
    await database_sync_to_async(message_post)(
        actor=world.users["admin"], room=world.general, body="before", client_msg_id="before"
    )
    for reader in readers:
        await until(reader, "message.new")


@pytest.fixture
def held_access(monkeypatch: pytest.MonkeyPatch) -> list[Callable[[], None]]:
    """Access items are kept back (as if their publishing thread were slow) until a test
    releases them."""
    held: list[Callable[[], None]] = []
    real = publish.publish_access

    def hold(**kwargs: Any) -> None:
        held.append(lambda: real(**kwargs))

    monkeypatch.setattr(publish, "publish_access", hold)
    return held


async def test_a_message_published_before_the_kick_that_preceded_it_skips_the_kicked(
    world: World, held_access: list[Callable[[], None]]
) -> None:
    room = world.general.pk
    target = await connect(world.target, sync={})
    admin = await connect(world.users["admin"], sync={})
    await warm(world, target, admin)
    await database_sync_to_async(members.member_kick)(
        actor=world.users["moderator"], community=world.community, user_id=world.target.pk
    )
    assert len(held_access) == 1  # the kick's room.removed has not gone out yet
    await database_sync_to_async(message_post)(
        actor=world.users["admin"], room=world.general, body="after the kick", client_msg_id="k"
    )
    event = await until(admin, "message.new")
    assert event["message"]["body"] == "after the kick"
    await quiet(target, "message.new")  # committed after the kick: not for the kicked
    for release in held_access:
        release()
    removed = await until(target, "room.removed")
    assert removed == {"type": "room.removed", "room": room, "reason": "kicked"}
    await target.disconnect()
    await admin.disconnect()


async def test_a_message_published_before_the_join_that_preceded_it_reaches_the_newcomer(
    world: World, held_access: list[Callable[[], None]]
) -> None:
    newcomer = world.users["outsider"]
    comm = await connect(newcomer, sync={})
    admin = await connect(world.users["admin"], sync={})
    await warm(world, admin)
    await database_sync_to_async(members.community_join)(actor=newcomer, community=world.community)
    await database_sync_to_async(message_post)(
        actor=world.users["admin"], room=world.general, body="welcome", client_msg_id="w"
    )
    await quiet(comm, "message.new")  # the room is not live here until its room.added
    for release in held_access:
        release()
    added = await until(comm, "room.added")
    assert added["room"] == world.general.pk
    event = await until(comm, "message.new")  # fetched after the grant: nothing lost
    assert (event["seq"], event["message"]["body"]) == (added["info"]["head_seq"] + 1, "welcome")
    await comm.disconnect()
    await admin.disconnect()


async def test_a_late_grant_never_reopens_a_room_revoked_since(
    world: World, held_access: list[Callable[[], None]]
) -> None:
    newcomer = world.users["outsider"]
    comm = await connect(newcomer, sync={})
    await database_sync_to_async(members.community_join)(actor=newcomer, community=world.community)
    await database_sync_to_async(members.community_leave)(actor=newcomer, community=world.community)
    grant, revoke = held_access
    revoke()  # the leave's room.removed arrives first
    removed = await until(comm, "room.removed")
    assert removed["reason"] == "left"
    grant()  # then the join's room.added, late: older than what was applied
    grant()  # and once more, as a redelivery would
    await database_sync_to_async(message_post)(
        actor=world.users["admin"], room=world.general, body="members only", client_msg_id="m"
    )
    await quiet(comm, "room.added", "message.new")
    await send(comm, {"type": "ping", "ref": "alive"})
    await until(comm, "pong")
    await comm.disconnect()
