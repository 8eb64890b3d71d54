"""Connections per user and presence, in whichever mode the suite runs (docs/protocol.md,
"Presence" and "Closing codes"): a socket past WS_MAX_PER_USER is closed with 4430 and one
closing lets another in; reconnecting within PRESENCE_GRACE_S tells room-mates nothing, a real
disconnect one ``offline`` after it; ``hello.online`` lists the connected users the caller hears
presence from. Against the real Redis: the cap and the pending offline across two gateways."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis.asyncio as aioredis
from channels.testing import WebsocketCommunicator

from chat import protocol as p
from fanout.connections import LocalConnections, TooManyConnections
from sphere.asgi import application
from tests.chat.gateway_helpers import TIMEOUT, closed_with, connect, quiet, ticket, until
from tests.conftest import World


async def _refused(user: Any) -> int:
    """Open a socket of ``user`` that the server closes: the close code."""
    comm = WebsocketCommunicator(application, f"/ws/v1/?ticket={await ticket(user)}")
    connected, _ = await comm.connect(timeout=TIMEOUT)
    assert connected  # accepted at once, closed once opened
    return await closed_with(comm)


def _presence(user: Any, status: str) -> dict[str, Any]:
    return {
        "type": "presence",
        "user": {"id": user.pk, "username": user.username},
        "status": status,
    }


@pytest.mark.django_db(transaction=True)
async def test_a_socket_past_the_cap_is_closed_with_4430_and_a_closed_one_makes_room(
    world: World, settings: Any
) -> None:
    settings.WS_MAX_PER_USER = 3
    user = world.users["member"]
    comms = [await connect(user) for _ in range(3)]
    assert await _refused(user) == p.CLOSE_TOO_MANY == 4430
    assert await _refused(user) == 4430  # a refused socket took no place
    other = await connect(world.users["admin"])  # the cap is per user
    await comms.pop().disconnect()
    comms.append(await connect(user))
    assert await _refused(user) == 4430
    for comm in [*comms, other]:
        await comm.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_reconnecting_within_the_grace_tells_room_mates_nothing(
    world: World, settings: Any
) -> None:
    # A grace far longer than the test: no offline may come from it.
    settings.PRESENCE_GRACE_S = 120.0
    user = world.users["member"]
    watcher = await connect(world.users["admin"], sync={})
    comm = await connect(user, sync={})
    assert await until(watcher, "presence") == _presence(user, "online")
    for _ in range(10):
        await comm.disconnect()
        comm = await connect(user, sync={})
    await quiet(watcher, "presence")
    await comm.disconnect()
    await watcher.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_real_disconnect_gives_one_offline_after_the_grace_and_a_return_one_online(
    world: World, settings: Any
) -> None:
    settings.PRESENCE_GRACE_S = 0.3
    user = world.users["member"]
    watcher = await connect(world.users["admin"], sync={})
    comm = await connect(user, sync={})
    assert await until(watcher, "presence") == _presence(user, "online")
    second = await connect(user, sync={})
    await comm.disconnect()  # the user still has a socket: no offline, ever
    await second.disconnect()
    assert await until(watcher, "presence") == _presence(user, "offline")
    comm = await connect(user, sync={})  # back after the offline: announced again
    assert await until(watcher, "presence") == _presence(user, "online")
    await quiet(watcher, "presence")
    await comm.disconnect()
    assert await until(watcher, "presence") == _presence(user, "offline")
    await quiet(watcher, "presence")
    await watcher.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_hello_online_counts_a_user_within_the_grace_who_may_come_back_unannounced(
    world: World, settings: Any
) -> None:
    # The member closes their last socket: the offline is pending for the grace. A room-mate
    # who connects meanwhile must see the member online, since a return within the grace is
    # announced to nobody.
    settings.PRESENCE_GRACE_S = 120.0
    users = world.users
    comm = await connect(users["member"], sync={})
    await comm.disconnect()
    admin = await connect(users["admin"], sync={})
    assert users["member"].pk in admin.hello["online"]
    comm = await connect(users["member"], sync={})  # back: no presence frame (see above)
    await quiet(admin, "presence")
    for each in (comm, admin):
        await each.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_hello_online_lists_the_connected_users_the_caller_hears_presence_from(
    world: World, settings: Any
) -> None:
    # general has 5 readers, secret 3 (owner, admin, moderator): with the cap at 3, presence
    # goes through secret alone.
    settings.PRESENCE_MAX_ROOM = 3
    users = world.users
    admin = await connect(users["admin"])
    member = await connect(users["member"])  # shares only general (too big) with the admin
    outsider = await connect(users["outsider"])  # shares nothing
    moderator = await connect(users["moderator"])
    assert moderator.hello["online"] == [users["admin"].pk]  # not the caller, not the others
    assert member.hello["online"] == []
    settings.PRESENCE_MAX_ROOM = 500
    owner = await connect(users["owner"])
    expected = sorted(users[s].pk for s in ("admin", "member", "moderator"))
    assert owner.hello["online"] == expected
    for comm in (admin, member, outsider, moderator, owner):
        await comm.disconnect()


# --- across gateways, against the real Redis ---------------------------------------------------


@dataclass(eq=False)
class Conn:
    user_id: int


@pytest.fixture
async def two_gateways(
    settings: Any,
) -> AsyncIterator[tuple[LocalConnections, LocalConnections]]:
    """Two gateways sharing a registry, both live (heartbeating) before the test starts."""
    from fanout.redis.link import RedisLink

    url = os.environ.get("REDIS_URL", "")
    if not url:
        pytest.skip("needs REDIS_URL")
    settings.REDIS_URL = url
    settings.FANOUT_PREFIX = f"test-presence-{secrets.token_hex(4)}"
    loop = asyncio.get_running_loop()
    gateways = (LocalConnections(loop, RedisLink), LocalConnections(loop, RedisLink))
    for gateway in gateways:
        assert isinstance(gateway.link, RedisLink)
        await asyncio.wait_for(gateway.link.ready.wait(), TIMEOUT)
    yield gateways
    for gateway in gateways:
        gateway.stop()
    client = aioredis.Redis.from_url(url, socket_timeout=5)
    keys = [k async for k in client.scan_iter(match=f"{settings.FANOUT_PREFIX}:*", count=1000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.mark.services
async def test_the_cap_counts_the_users_sockets_in_every_live_gateway(
    two_gateways: tuple[LocalConnections, LocalConnections],
) -> None:
    a, b = two_gateways
    on_a = [Conn(5), Conn(5)]
    for conn in on_a:
        await a.attach(conn, 3)
    await b.attach(Conn(5), 3)
    with pytest.raises(TooManyConnections):
        await b.attach(Conn(5), 3)
    with pytest.raises(TooManyConnections):
        await a.attach(Conn(5), 3)
    assert len(a.connections_of(5)) == 2  # the refused socket was not kept
    await a.detach(on_a.pop())
    await b.attach(Conn(5), 3)  # a closed socket in one gateway makes room in another
    assert len(b.connections_of(5)) == 2


@pytest.mark.services
async def test_a_pending_offline_is_cancelled_by_a_return_through_another_gateway(
    two_gateways: tuple[LocalConnections, LocalConnections],
) -> None:
    a, b = two_gateways
    first = Conn(6)
    assert await a.attach(first) is True  # online
    token = await a.leave(first)
    assert token is not None
    again = Conn(6)
    assert await b.attach(again) is False  # back within the grace: nothing to announce
    assert await a.offline_due(6, token) is False
    last = await b.leave(again)
    assert last is not None
    assert await a.offline_due(6, token) is False  # an earlier close's check: not its turn
    assert await a.offline_due(6, last) is True
    assert await b.offline_due(6, last) is False  # announced once
    assert await b.attach(Conn(6)) is True  # after the offline: online again
