"""The scaled transport against the real Redis: leases, takeover of pending entries, dead
letters, the outbox sweep and the hand-off to gateway inboxes. Workers run in the test's event
loop; the apps' room store is replaced so that each case controls who reads a room."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from fanout import metrics
from fanout.hooks import StoredEvent, hooks
from fanout.items import (
    AccessBatch,
    AccessItem,
    EventBatch,
    Malformed,
    RoomItem,
    UsersBatch,
    UsersItem,
    decode,
    encode,
)
from fanout.redis.keys import GROUP, Keys
from fanout.redis.publisher import publish
from fanout.redis.worker import Worker

PARTITIONS = 4


def test_items_and_batches_survive_the_wire() -> None:
    for obj in [
        RoomItem(3, 7, b'{"x":1}', None, 2, ("https://a.example/",), 12.5),
        RoomItem(3, 0, b"{}", 9),
        AccessItem(5, (1, 2), (b"a", b"b"), True, 4),
        UsersItem((4, 8), b"{}", 4),
        EventBatch(3, 7, b"{}", (1, 2), 1.0),
        AccessBatch(5, False, 0, (1,), (b"r",)),
        UsersBatch(b"{}", (4,)),
    ]:
        assert decode(encode(obj)) == obj


@pytest.mark.parametrize(
    "raw",
    [b"", b"\xc1", b"garbage", encode(UsersBatch(b"{}", (1,)))[:-3], b"\x92\xa1z\x01"],
)
def test_garbage_is_malformed_not_a_crash(raw: bytes) -> None:
    with pytest.raises(Malformed):
        decode(raw)


def test_access_items_need_one_frame_per_user() -> None:
    import msgspec

    raw = msgspec.msgpack.encode(("a", 1, [1, 2], [b"x"], True, 0))
    with pytest.raises(Malformed):
        decode(raw)


# --- against Redis -----------------------------------------------------------------------------


@pytest.fixture
def tier(settings: Any) -> Any:
    url = os.environ.get("REDIS_URL", "")
    if not url:
        pytest.skip("needs REDIS_URL")
    settings.REDIS_URL = url
    settings.FANOUT_PREFIX = f"test-streams-{secrets.token_hex(4)}"
    settings.FANOUT_PARTITIONS = PARTITIONS
    settings.FANOUT_LEASE_MS = 600
    settings.FANOUT_MAX_TRIES = 3
    settings.FANOUT_SWEEP_AFTER_S = 0.0
    return settings


@pytest.fixture
async def redis_client(tier: Any) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(tier.REDIS_URL, socket_timeout=5)
    yield client
    keys = [k async for k in client.scan_iter(match=f"{tier.FANOUT_PREFIX}:*", count=1000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
def readers(monkeypatch: pytest.MonkeyPatch) -> dict[int, frozenset[int]]:
    table: dict[int, frozenset[int]] = {}
    monkeypatch.setattr(
        hooks.store, "readers", lambda room_id: (table.get(room_id, frozenset()), 0)
    )
    monkeypatch.setattr(hooks.store, "unpublished", lambda older_than_s, limit: [])
    return table


async def until(check: Callable[[], Any], within: float = 10.0) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def fake_gateway(client: aioredis.Redis, keys: Keys, users: list[int]) -> str:
    """A gateway as workers see it: alive in the gateways set, holding ``users``."""
    from django.conf import settings

    gateway = secrets.token_hex(4)
    await client.zadd(keys.gateways(), {gateway: int(time.time() * 1000) + 60_000})
    for user in users:
        await client.hset(keys.where(user % settings.FANOUT_USER_SHARDS), str(user), gateway)
    return gateway


async def inbox(client: aioredis.Redis, keys: Keys, gateway: str) -> list[Any]:
    entries: Any = await client.xrange(keys.inbox(gateway))
    return [decode(fields[b"b"]) for _, fields in entries]


async def leases(client: aioredis.Redis, keys: Keys) -> list[str | None]:
    values: list[Any] = [await client.get(keys.lease(p)) for p in range(PARTITIONS)]
    return [v.decode() if v else None for v in values]


def run(worker: Worker) -> asyncio.Task[None]:
    return asyncio.create_task(worker.run())


async def stop(worker: Worker, task: asyncio.Task[None]) -> None:
    worker.stop()
    await asyncio.wait_for(task, 10)


@pytest.mark.services
async def test_two_workers_share_the_partitions_and_sigterm_hands_them_over(
    redis_client: aioredis.Redis, readers: Any
) -> None:
    keys = Keys()
    first, second = Worker(worker_id="w-one"), Worker(worker_id="w-two")
    tasks = [run(first), run(second)]
    try:

        async def shared() -> bool:
            held = await leases(redis_client, keys)
            return None not in held and {"w-one", "w-two"} == set(held)

        await until(shared)
        assert len(first.held) + len(second.held) == PARTITIONS
        assert not set(first.held) & set(second.held)
        await stop(second, tasks.pop())  # SIGTERM releases at once
        await until(lambda: _all_held_by(redis_client, keys, "w-one"), within=5 * 600 / 1000 + 3)
    finally:
        for worker, task in zip([first], tasks, strict=False):
            await stop(worker, task)


async def _all_held_by(client: aioredis.Redis, keys: Keys, worker: str) -> bool:
    return await leases(client, keys) == [worker] * PARTITIONS


@pytest.mark.services
async def test_a_dead_holders_pending_entries_are_claimed_and_handed_on_in_order(
    redis_client: aioredis.Redis, readers: Any
) -> None:
    keys = Keys()
    room = 4 * 10 + 1  # partition 1
    readers[room] = frozenset({11, 12})
    gateway = await fake_gateway(redis_client, keys, [11, 12])
    stream = keys.stream(1)
    await redis_client.xgroup_create(stream, GROUP, id="0", mkstream=True)
    for seq in range(1, 6):
        await redis_client.xadd(stream, {"i": encode(RoomItem(room, seq, b"{}"))})
    # A holder read them all and died before acknowledging any.
    await redis_client.xreadgroup(GROUP, "dead-holder", {stream: ">"}, count=10)
    before = metrics.REDELIVERIES._value.get()
    worker = Worker(worker_id="heir")
    task = run(worker)
    try:
        batches = await until(lambda: _event_batches(redis_client, keys, gateway, room, expected=5))
        assert [b.seq for b in batches] == [1, 2, 3, 4, 5]
        assert all(set(b.user_ids) == {11, 12} for b in batches)
        await until(lambda: _nothing_pending(redis_client, stream))
        assert metrics.REDELIVERIES._value.get() - before == 5
    finally:
        await stop(worker, task)


async def _event_batches(
    client: aioredis.Redis, keys: Keys, gateway: str, room: int, expected: int
) -> list[EventBatch] | None:
    found = [
        b
        for b in await inbox(client, keys, gateway)
        if isinstance(b, EventBatch) and b.room_id == room
    ]
    return found if len(found) >= expected else None


async def _nothing_pending(client: aioredis.Redis, stream: str) -> bool:
    summary = await client.xpending(stream, GROUP)
    return int(summary["pending"]) == 0


@pytest.mark.services
async def test_poison_entries_go_to_dead_letters_and_the_partition_flows_on(
    redis_client: aioredis.Redis, readers: Any
) -> None:
    keys = Keys()
    room = 4 * 3 + 2  # partition 2
    readers[room] = frozenset({21})
    gateway = await fake_gateway(redis_client, keys, [21])
    stream = keys.stream(2)
    worker = Worker(worker_id="w")
    task = run(worker)
    try:
        await until(lambda: _all_held_by(redis_client, keys, "w"))
        await redis_client.xadd(stream, {"i": b"\xc1 not msgpack"})
        await redis_client.xadd(stream, {"other": b"field"})
        await redis_client.xadd(stream, {"i": encode(RoomItem(room, 1, b"{}"))})
        batches = await until(lambda: _event_batches(redis_client, keys, gateway, room, 1))
        assert [b.seq for b in batches] == [1]
        dead = await until(lambda: _dead(redis_client, keys.dead(2), 2))
        assert [fields[b"why"] for _, fields in dead] == [b"malformed", b"malformed"]
        await until(lambda: _nothing_pending(redis_client, stream))
    finally:
        await stop(worker, task)


async def _dead(client: aioredis.Redis, key: str, count: int) -> list[Any] | None:
    entries = await client.xrange(key)
    return entries if len(entries) >= count else None


@pytest.mark.services
async def test_an_entry_that_keeps_killing_its_holder_is_dead_lettered(
    redis_client: aioredis.Redis, readers: Any
) -> None:
    keys = Keys()
    stream = keys.stream(3)
    room = 4 * 5 + 3
    await redis_client.xgroup_create(stream, GROUP, id="0", mkstream=True)
    await redis_client.xadd(stream, {"i": encode(RoomItem(room, 1, b"{}"))})
    await redis_client.xreadgroup(GROUP, "a", {stream: ">"}, count=1)
    for holder in ("b", "c"):  # each holder died holding it
        await redis_client.xautoclaim(stream, GROUP, holder, min_idle_time=0, start_id="0-0")
    worker = Worker(worker_id="w")
    task = run(worker)
    try:
        dead = await until(lambda: _dead(redis_client, keys.dead(3), 1))
        assert dead[0][1][b"why"] == b"too many deliveries"
        await until(lambda: _nothing_pending(redis_client, stream))
    finally:
        await stop(worker, task)


@pytest.mark.services
async def test_access_and_user_items_reach_the_gateways_holding_those_users(
    redis_client: aioredis.Redis, readers: Any
) -> None:
    keys = Keys()
    room = 4 * 7  # partition 0
    readers[room] = frozenset({31, 32, 33})
    here = await fake_gateway(redis_client, keys, [31])
    there = await fake_gateway(redis_client, keys, [32])  # 33 is connected nowhere
    worker = Worker(worker_id="w")
    task = run(worker)
    try:
        await until(lambda: _all_held_by(redis_client, keys, "w"))

        for item in [
            RoomItem(room, 1, b"{}"),
            AccessItem(room, (31, 33), (b"r31", b"r33"), False),
            UsersItem((31, 32, 33), b"u", 31),
            RoomItem(room, 0, b"typing", exclude_user=32),
        ]:
            assert await asyncio.to_thread(publish, item)

        async def both() -> tuple[list[Any], list[Any]] | None:
            a, b = await inbox(redis_client, keys, here), await inbox(redis_client, keys, there)
            return (a, b) if len(a) >= 4 and len(b) >= 2 else None

        at_here, at_there = await until(both)
        # The room's own items keep their order; the users item went through another
        # partition (that of its lowest user id), so only its presence is checked.
        room_here = [b for b in at_here if not isinstance(b, UsersBatch)]
        assert room_here == [
            EventBatch(room, 1, b"{}", (31,), room_here[0].sent),
            AccessBatch(room, False, 0, (31,), (b"r31",)),
            EventBatch(room, 0, b"typing", (31,), room_here[2].sent),
        ]
        assert UsersBatch(b"u", (31,)) in at_here
        # Here too only the room's own items are in order: the users item may come first.
        room_there = [b for b in at_there if not isinstance(b, UsersBatch)]
        assert room_there[0] == EventBatch(room, 1, b"{}", (32,), room_there[0].sent)
        assert UsersBatch(b"u", (32,)) in at_there
        # 32 wrote the typing frame and does not get it back.
        assert not any(isinstance(b, EventBatch) and b.seq == 0 for b in at_there)
    finally:
        await stop(worker, task)


@pytest.mark.services
async def test_the_sweep_publishes_what_was_committed_but_never_published(
    redis_client: aioredis.Redis, readers: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = Keys()
    room = 4 * 9 + 1
    readers[room] = frozenset({41})
    gateway = await fake_gateway(redis_client, keys, [41])
    unpublished = [StoredEvent(room, 1, b'{"seq":1}'), StoredEvent(room, 2, b'{"seq":2}')]
    marked: list[tuple[int, int]] = []

    def pending(older_than_s: float, limit: int) -> list[StoredEvent]:
        return [e for e in unpublished if (e.room_id, e.seq) not in marked]

    monkeypatch.setattr(hooks.store, "unpublished", pending)
    monkeypatch.setattr(hooks.store, "mark_published", marked.extend)
    worker = Worker(worker_id="w")
    task = run(worker)
    try:
        batches = await until(lambda: _event_batches(redis_client, keys, gateway, room, 2))
        assert [b.seq for b in batches] == [1, 2]
        assert marked == [(room, 1), (room, 2)]
    finally:
        await stop(worker, task)


@pytest.mark.services
async def test_a_huge_room_is_looked_up_shard_by_shard_and_handed_over_once_per_gateway(
    redis_client: aioredis.Redis, readers: Any
) -> None:
    from fanout.redis.registry import LARGE_ROOM

    keys = Keys()
    room = 4 * 11 + 1
    members = list(range(1000, 1000 + LARGE_ROOM + 500))
    readers[room] = frozenset(members)
    west = await fake_gateway(redis_client, keys, members[::2])
    east = await fake_gateway(redis_client, keys, members[1::2])
    worker = Worker(worker_id="w")
    task = run(worker)
    try:
        await until(lambda: _all_held_by(redis_client, keys, "w"))
        for seq in (1, 2):
            await redis_client.xadd(keys.stream(1), {"i": encode(RoomItem(room, seq, b"{}"))})
        at_west = await until(lambda: _event_batches(redis_client, keys, west, room, 2))
        at_east = await until(lambda: _event_batches(redis_client, keys, east, room, 2))
        assert [b.seq for b in at_west] == [1, 2] == [b.seq for b in at_east]
        assert sorted(at_west[0].user_ids) == members[::2]
        assert sorted(at_east[1].user_ids) == members[1::2]
    finally:
        await stop(worker, task)


@pytest.mark.services
async def test_a_worker_s_own_retries_are_not_deaths_and_count_a_share_once(
    redis_client: aioredis.Redis, readers: Any
) -> None:
    """Acknowledgements that fail three times (a Redis connection killed) make the worker
    hand the entry over again, not dead-letter it; the gateway's cursor drops the repeats and
    link reach counts the message's share once."""
    import redis as sync_redis

    from reach.store import digest_of

    keys = Keys()
    room = 4 * 8  # partition 0
    readers[room] = frozenset({51, 52})
    gateway = await fake_gateway(redis_client, keys, [51])
    worker = Worker(worker_id="w")
    real_xack = worker.client.xack
    failures = 0

    async def flaky_xack(*args: Any, **kwargs: Any) -> Any:
        nonlocal failures
        if failures < 3:
            failures += 1
            raise sync_redis.ConnectionError("connection reset")
        return await real_xack(*args, **kwargs)

    worker.client.xack = flaky_xack  # type: ignore[method-assign]
    task = run(worker)
    try:
        await until(lambda: _all_held_by(redis_client, keys, "w"))

        url = "https://a.example/x"
        item = RoomItem(room, 1, b"{}", None, 9, (url,))
        assert await asyncio.to_thread(publish, item)
        await until(lambda: _nothing_pending(redis_client, keys.stream(0)), within=20)
        assert failures == 3
        assert await redis_client.xlen(keys.dead(0)) == 0
        batches = await _event_batches(redis_client, keys, gateway, room, 1)
        assert batches
        assert {b.seq for b in batches} == {1}
        assert await redis_client.scard(keys.shares(9, digest_of(url))) == 1
        assert await redis_client.pfcount(keys.reach(9, digest_of(url))) == 2
    finally:
        await stop(worker, task)


@pytest.mark.services
async def test_a_partition_past_its_lease_deadline_stops_and_is_taken_up_again_losing_nothing(
    redis_client: aioredis.Redis, readers: Any
) -> None:
    """Past the time its lease is known valid, a partition's task stops before routing, even
    if no other holder has taken the partition yet: the entry stays pending."""
    keys = Keys()
    room = 4 * 10 + 1  # partition 1
    readers[room] = frozenset({61})
    gateway = await fake_gateway(redis_client, keys, [61])
    worker = Worker(worker_id="w")
    task = run(worker)
    try:
        await until(lambda: _all_held_by(redis_client, keys, "w"))
        worker.lease_until[1] = 0.0  # as if the last renewal's answer came too late

        assert await asyncio.to_thread(publish, RoomItem(room, 1, b"{}"))
        # The next round renews, sees the task ended and takes the partition up again.
        batches = await until(lambda: _event_batches(redis_client, keys, gateway, room, 1))
        assert [b.seq for b in batches] == [1]
    finally:
        await stop(worker, task)
