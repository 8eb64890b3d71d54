"""A gateway's link against the real Redis: its inbox entries (a lone batch or a bundle) and its
heartbeat, which finds a lost registry with the same round trip that keeps it alive."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from fanout.connections import LocalConnections
from fanout.items import AccessBatch, Bundle, EventBatch, UsersBatch, encode
from fanout.redis.keys import Keys
from fanout.redis.registry import shard_of

pytestmark = pytest.mark.services


class Recorder:
    """A connection as the gateway sees it, recording what reaches it."""

    def __init__(self, user_id: int) -> None:
        self.user_id = user_id
        self.got: list[tuple[Any, ...]] = []

    def deliver_event(self, room_id: int, seq: int, frame: bytes) -> bool:
        self.got.append(("event", room_id, seq))
        return True

    def deliver_frame(self, frame: bytes) -> None:
        self.got.append(("frame", frame))

    def revoke_room(self, room_id: int, frame: bytes, version: int = 0) -> None:
        self.got.append(("revoke", room_id))

    def grant_room(self, room_id: int, head_seq: int, frame: bytes, version: int = 0) -> None:
        self.got.append(("grant", room_id))

    def recover(self) -> None:
        self.got.append(("recover",))


@pytest.fixture
async def gateway(settings: Any) -> AsyncIterator[tuple[LocalConnections, aioredis.Redis]]:
    from fanout.redis.link import RedisLink

    url = os.environ.get("REDIS_URL", "")
    if not url:
        pytest.skip("needs REDIS_URL")
    settings.REDIS_URL = url
    settings.FANOUT_PREFIX = f"test-link-{secrets.token_hex(4)}"
    client = aioredis.Redis.from_url(url, socket_timeout=5)
    local = LocalConnections(asyncio.get_running_loop(), RedisLink)
    yield local, client
    local.stop()
    keys = [k async for k in client.scan_iter(match=f"{settings.FANOUT_PREFIX}:*", count=1000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def until(check: Callable[[], Any], what: str, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within} s: {what}")
        await asyncio.sleep(0.05)


async def test_an_inbox_entry_s_bundle_is_applied_batch_by_batch_in_order(
    gateway: tuple[LocalConnections, aioredis.Redis],
) -> None:
    local, client = gateway
    alice = Recorder(7)
    assert await local.attach(alice)
    keys = Keys()
    bundle = Bundle(
        (
            EventBatch(3, 1, b"{}", (7,)),
            EventBatch(3, 2, b"{}", (7,)),
            AccessBatch(3, False, 2, (7,), (b"removed",)),
        )
    )
    await client.xadd(keys.inbox(local.id), {"b": encode(bundle)})
    await client.xadd(keys.inbox(local.id), {"b": encode(UsersBatch(b"hi", (7,)))})

    async def four() -> bool:
        return len(alice.got) >= 4

    await until(four, "every batch applied")
    assert alice.got == [("event", 3, 1), ("event", 3, 2), ("revoke", 3), ("frame", b"hi")]


async def test_a_gateway_that_finds_its_mark_gone_registers_again_and_recovers(
    gateway: tuple[LocalConnections, aioredis.Redis], settings: Any
) -> None:
    """Redis lost its data (here: the mark and the registry entry are deleted): the next
    heartbeat sees the mark was gone, registers the gateway's users again and has every
    connection catch up from the database."""
    local, client = gateway
    bob = Recorder(8)
    assert await local.attach(bob)
    keys = Keys()
    where = keys.where(shard_of(8, settings.FANOUT_USER_SHARDS))

    async def marked() -> bool:
        return bool(await client.exists(keys.mark(local.id)))

    await until(marked, "the first heartbeat")
    assert await client.hget(where, "8") == local.id.encode()
    await client.delete(keys.mark(local.id), where)

    async def recovered() -> bool:
        return ("recover",) in bob.got and await client.hget(where, "8") == local.id.encode()

    await until(recovered, "registered again and recovering")
    assert await marked()
