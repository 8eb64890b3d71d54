"""The gateway registry as a partition worker reads and cleans it, against the real Redis: a
gateway is taken for dead only on what Redis said after its entries were found, and a removal
never leaves a live gateway's users unreachable (docs/fanout.md, "Gateways")."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from fanout.connections import LocalConnections
from fanout.redis.keys import Keys
from fanout.redis.registry import LIVE_MS, RedisRegistry, shard_of

pytestmark = pytest.mark.services


@pytest.fixture
async def client(settings: Any) -> AsyncIterator[aioredis.Redis]:
    url = os.environ.get("REDIS_URL", "")
    if not url:
        pytest.skip("needs REDIS_URL")
    settings.REDIS_URL = url
    settings.FANOUT_PREFIX = f"test-registry-{secrets.token_hex(4)}"
    client = aioredis.Redis.from_url(url, socket_timeout=5)
    yield client
    keys = [k async for k in client.scan_iter(match=f"{settings.FANOUT_PREFIX}:*", count=1000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


def now_ms() -> int:
    return int(time.time() * 1000)


def where_of(user_id: int) -> str:
    from django.conf import settings

    return Keys().where(shard_of(user_id, settings.FANOUT_USER_SHARDS))


async def register(client: aioredis.Redis, user_id: int, gateway: str) -> None:
    """The gateway holds the user (what its admission writes)."""
    await client.hset(where_of(user_id), str(user_id), gateway)


async def holders(client: aioredis.Redis, user_id: int) -> Any:
    """The ids of the gateways holding the user, as Redis has them (None: nowhere)."""
    return await client.hget(where_of(user_id), str(user_id))


async def test_a_gateway_whose_first_heartbeat_came_after_the_live_list_was_read_is_live(
    client: aioredis.Redis,
) -> None:
    """A worker read the live gateways a moment ago; a gateway then started, heartbeat and
    registered its users. A look-up finding those users there hands them over and keeps their
    entries: the live list it judged by predates the gateway."""
    keys = Keys()
    registry = RedisRegistry(client, keys)
    await registry.refresh()  # no gateway yet
    gateway = secrets.token_hex(6)
    await client.zadd(keys.gateways(), {gateway: now_ms()})
    await register(client, 5, gateway)
    await register(client, 6, gateway)

    assert await registry.locate([5, 6]) == {gateway: [5, 6]}
    assert registry.stale == []
    await registry.clean()
    assert await holders(client, 5) == gateway.encode()
    assert await holders(client, 6) == gateway.encode()


async def test_a_gateway_that_was_late_and_heartbeats_again_keeps_its_entries(
    client: aioredis.Redis,
) -> None:
    """Entries found while their gateway looked dead are not removed once it heartbeats again."""
    keys = Keys()
    registry = RedisRegistry(client, keys)
    gateway = secrets.token_hex(6)
    await client.zadd(keys.gateways(), {gateway: now_ms() - LIVE_MS - 5000})  # late
    await client.set(keys.mark(gateway), "1")
    await register(client, 7, gateway)
    assert await registry.locate([7]) == {}
    assert registry.stale == [(7, gateway)]

    await client.zadd(keys.gateways(), {gateway: now_ms()})  # it beats again
    await registry.clean()
    assert await holders(client, 7) == gateway.encode()
    assert await client.exists(keys.mark(gateway))


async def test_a_gateway_whose_entries_were_removed_finds_its_mark_gone(
    client: aioredis.Redis,
) -> None:
    """A gateway still silent when its entries are removed (here: one no longer among the
    gateways at all) loses its mark with them: if it was only slow, its next heartbeat sees the
    mark gone and registers its users again."""
    keys = Keys()
    registry = RedisRegistry(client, keys)
    gateway = secrets.token_hex(6)
    await client.set(keys.mark(gateway), "1")
    await register(client, 8, gateway)
    assert await registry.locate([8]) == {}
    await registry.clean()
    assert await holders(client, 8) is None
    assert not await client.exists(keys.mark(gateway))


class Recorder:
    """A connection as the gateway sees it: only whether it was asked to catch up."""

    def __init__(self, user_id: int) -> None:
        self.user_id = user_id
        self.recovered = 0

    def deliver_event(self, room_id: int, seq: int, frame: bytes) -> bool:
        return True

    def deliver_frame(self, frame: bytes) -> None: ...

    def revoke_room(self, room_id: int, frame: bytes, version: int = 0) -> None: ...

    def grant_room(self, room_id: int, head_seq: int, frame: bytes, version: int = 0) -> None: ...

    def recover(self) -> None:
        self.recovered += 1


async def test_a_mark_removed_while_the_heartbeat_s_reply_was_lost_is_still_noticed(
    client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mark is removed (the gateway's entries with it) and the heartbeat that finds it gone
    loses its reply (a dropped connection): the next heartbeat still sees the loss, registers
    the users again and has the connections catch up. The heartbeat never recreates the mark
    before it has acted on its absence."""
    from fanout.redis import link as link_module
    from fanout.redis.link import RedisLink

    monkeypatch.setattr(link_module, "HEARTBEAT_S", 0.05)
    keys = Keys()
    local = LocalConnections(asyncio.get_running_loop(), RedisLink)
    try:
        carol = Recorder(9)
        assert await local.attach(carol)
        deadline = time.monotonic() + 10
        while not await client.exists(keys.mark(local.id)):
            assert time.monotonic() < deadline, "no first heartbeat"
            await asyncio.sleep(0.02)
        link = local.link
        assert isinstance(link, RedisLink)

        real_execute = aioredis.client.Pipeline.execute
        lost = asyncio.Event()

        async def execute_then_lose_the_reply(self: Any, *args: Any, **kwargs: Any) -> Any:
            answer = await real_execute(self, *args, **kwargs)
            if not lost.is_set() and answer[-1] is None:  # the beat that found the mark gone
                lost.set()
                raise aioredis.ConnectionError("the reply was lost")
            return answer

        # The registry entry and the mark go (a worker took the gateway for dead), and the
        # reply of the heartbeat that finds the mark gone is lost after Redis ran it.
        monkeypatch.setattr(aioredis.client.Pipeline, "execute", execute_then_lose_the_reply)
        await client.hdel(where_of(9), "9")
        await client.delete(keys.mark(local.id))
        deadline = time.monotonic() + 10
        while not (carol.recovered and await holders(client, 9) == local.id.encode()):
            assert time.monotonic() < deadline, "the loss of the mark went unnoticed"
            await asyncio.sleep(0.02)
        assert lost.is_set()
    finally:
        local.stop()
