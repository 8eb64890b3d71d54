"""The scaled transport against the real Redis: leases, takeover of pending entries, dead
letters, the outbox sweep, the routed seqs and the hand-off to gateway inboxes. Workers run in
the test's event loop; the apps' room store is replaced so that each case controls who reads a
room and which events it holds."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
import pytest
import redis.asyncio as aioredis

from fanout import metrics
from fanout.hooks import StoredEvent, hooks
from fanout.items import (
    AccessBatch,
    AccessItem,
    Batch,
    Bundle,
    EventBatch,
    Malformed,
    RoomItem,
    UsersBatch,
    UsersItem,
    decode,
    decode_batches,
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
        Bundle((EventBatch(3, 7, b"{}", (1,)), AccessBatch(5, True, 2, (1,), (b"g",)))),
    ]:
        assert decode(encode(obj)) == obj


def test_an_inbox_entry_is_a_lone_batch_or_a_bundle_of_them_in_order() -> None:
    lone = EventBatch(3, 7, b"{}", (1, 2))
    assert decode_batches(encode(lone)) == (lone,)
    several = (lone, UsersBatch(b"u", (4,)), AccessBatch(5, False, 0, (1,), (b"r",)))
    assert decode_batches(encode(Bundle(several))) == several
    with pytest.raises(Malformed):  # an item is not a batch
        decode_batches(encode(RoomItem(3, 7, b"{}")))
    with pytest.raises(Malformed):  # nor is a bundle of items
        decode_batches(msgspec.msgpack.encode(("B", [("r", 3, 7, b"{}")])))


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


async def test_idle_reads_block_long_and_within_their_own_clients_timeout(settings: Any) -> None:
    """An idle partition or gateway inbox reads rarely: a blocking read lasts 15 s, on a client
    whose socket timeout leaves the server the usual time to answer after it."""
    from fanout.redis.keys import BLOCK_MS, SOCKET_TIMEOUT_S, async_client

    settings.FANOUT_REDIS_URL = "redis://127.0.0.1:6379/0"  # no connection is made here
    settings.FANOUT_REDIS_CLUSTER = False
    blocking, plain = async_client(blocking=True), async_client()
    try:
        timeout = blocking.connection_pool.connection_kwargs["socket_timeout"]
        assert BLOCK_MS >= 10_000
        assert timeout >= BLOCK_MS / 1000 + SOCKET_TIMEOUT_S
        assert plain.connection_pool.connection_kwargs["socket_timeout"] == SOCKET_TIMEOUT_S
    finally:
        await blocking.aclose()
        await plain.aclose()


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
    # No room has events in the database unless a case says so: the sweep finds nothing.
    monkeypatch.setattr(hooks.store, "heads", list)
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


async def inbox(client: aioredis.Redis, keys: Keys, gateway: str) -> list[Batch]:
    """The batches in a gateway's inbox, in order, bundles unpacked."""
    entries: Any = await client.xrange(keys.inbox(gateway))
    return [batch for _, fields in entries for batch in decode_batches(fields[b"b"])]


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


class Store:
    """The database's side of the sweep: the rooms' events, and what the sweep asked."""

    def __init__(self) -> None:
        self.events: dict[int, list[StoredEvent]] = {}
        self.passes = 0
        self.asked: list[tuple[int, int, float]] = []

    def add(self, room: int, seqs: range) -> None:
        self.events.setdefault(room, []).extend(
            StoredEvent(room, seq, b'{"seq":%d}' % seq) for seq in seqs
        )

    def heads(self) -> list[tuple[int, int]]:
        self.passes += 1
        return [(room, events[-1].seq) for room, events in self.events.items() if events]

    def events_after(
        self, room_id: int, after_seq: int, limit: int, older_than_s: float
    ) -> list[StoredEvent]:
        self.asked.append((room_id, after_seq, older_than_s))
        return [e for e in self.events.get(room_id, []) if e.seq > after_seq][:limit]


@pytest.fixture
def store(readers: Any, monkeypatch: pytest.MonkeyPatch) -> Store:
    found = Store()
    monkeypatch.setattr(hooks.store, "heads", found.heads)
    monkeypatch.setattr(hooks.store, "events_after", found.events_after)
    return found


async def _routed(client: aioredis.Redis, keys: Keys, room: int) -> int | None:
    value = await client.hget(keys.routed(room % PARTITIONS), str(room))
    return int(value) if value is not None else None


@pytest.mark.services
async def test_the_sweep_publishes_what_the_workers_never_routed(
    redis_client: aioredis.Redis, readers: Any, store: Store, tier: Any
) -> None:
    """A room behind its routed seq gets the rest; a room without a record is looked back into
    a bounded number of seqs and its head recorded; a room routed to its head is not read."""
    from fanout.redis.sweep import SWEEP_LOOKBACK

    tier.FANOUT_SWEEP_AFTER_S = 1.5
    tier.FANOUT_SWEEP_EVERY_S = 3600.0  # only the first pass and the flag's
    keys = Keys()
    behind, unknown, done = 4 * 9 + 1, 4 * 9 + 2, 4 * 9 + 3
    for room in (behind, unknown, done):
        readers[room] = frozenset({41})
    gateway = await fake_gateway(redis_client, keys, [41])
    store.add(behind, range(1, 4))
    store.add(unknown, range(1, SWEEP_LOOKBACK + 51))
    store.add(done, range(1, 3))
    await redis_client.hset(keys.routed(behind % PARTITIONS), str(behind), 1)
    await redis_client.hset(keys.routed(done % PARTITIONS), str(done), 2)
    worker = Worker(worker_id="w")
    task = run(worker)
    try:
        got = await until(lambda: _event_batches(redis_client, keys, gateway, behind, 2))
        assert [b.seq for b in got] == [2, 3]
        got = await until(
            lambda: _event_batches(redis_client, keys, gateway, unknown, SWEEP_LOOKBACK)
        )
        assert [b.seq for b in got] == list(range(51, SWEEP_LOOKBACK + 51))
        assert not await _event_batches(redis_client, keys, gateway, done, 1)
        # What it knows it asks about young events excluded; the unknown tail whatever its age.
        assert sorted(store.asked) == [(behind, 1, 1.5), (unknown, 50, 0.0)]
        assert await _routed(redis_client, keys, unknown) == SWEEP_LOOKBACK + 50
        await until(lambda: _routed_at_least(redis_client, keys, behind, 3))
        # The next pass (a publisher's flag) reads nothing again: every room is at its head.
        await redis_client.set(keys.sweep_due(), "1")
        await until(lambda: _passes(store, 2))
        assert len(store.asked) == 2
    finally:
        await stop(worker, task)


async def _routed_at_least(client: aioredis.Redis, keys: Keys, room: int, seq: int) -> bool:
    return (await _routed(client, keys, room) or 0) >= seq


async def _passes(store: Store, count: int) -> bool:
    return store.passes >= count


@pytest.mark.services
async def test_a_publish_that_failed_and_went_through_later_makes_the_sweep_run_at_once(
    redis_client: aioredis.Redis, readers: Any, store: Store, tier: Any
) -> None:
    """A publish that fails is retried in the background, in order; once it goes through the
    publisher raises the sweep flag, and the holder of partition 0 sweeps at its next lease
    round instead of at its slow pass (an hour here)."""
    from fanout.redis import keys as redis_keys
    from fanout.transport import current

    tier.SCALED = True
    tier.FANOUT_SWEEP_EVERY_S = 3600.0
    keys = Keys()
    room = 4 * 12 + 3
    readers[room] = frozenset({71})
    gateway = await fake_gateway(redis_client, keys, [71])
    worker = Worker(worker_id="w")
    task = run(worker)
    try:
        await until(lambda: _all_held_by(redis_client, keys, "w"))
        await until(lambda: _passes(store, 1))  # a new holder of partition 0 sweeps once
        items = [RoomItem(room, seq, b"{}") for seq in (1, 2, 3)]
        tier.FANOUT_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
        assert not await asyncio.to_thread(current().submit_many, items)
        assert await redis_client.get(keys.sweep_due()) is None
        tier.FANOUT_REDIS_URL = ""  # Redis is back: the retrier's next attempt goes through
        got = await until(lambda: _event_batches(redis_client, keys, gateway, room, 3))
        assert [b.seq for b in got] == [1, 2, 3]
        await until(lambda: _passes(store, 2))
        assert await redis_client.get(keys.sweep_due()) is None  # read and cleared
    finally:
        redis_keys._sync = None
        await stop(worker, task)


@pytest.mark.services
async def test_a_read_is_handed_over_at_once_and_acknowledged_with_its_routed_seqs(
    redis_client: aioredis.Redis, readers: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Everything one read holds for a gateway is one inbox entry, in the read's order; the
    read is acknowledged and each room's highest seq recorded, never lowered."""
    from fanout.redis.scripts import ROUTED

    keys = Keys()
    first, second = 4 * 13 + 1, 4 * 14 + 1  # partition 1
    readers[second] = frozenset({81})
    # The room's readers as the database answers: 82 is removed (version 1) once the first
    # read of them is made, so only the removal's item makes the router read them again.
    answers = iter([(frozenset({81, 82}), 0), (frozenset({81}), 1)])
    table = hooks.store.readers
    monkeypatch.setattr(
        hooks.store, "readers", lambda room: next(answers) if room == first else table(room)
    )
    here = await fake_gateway(redis_client, keys, [81])
    there = await fake_gateway(redis_client, keys, [82])
    stream = keys.stream(1)
    items: list[Any] = [
        RoomItem(first, 1, b"1", access_version=0),
        RoomItem(second, 1, b"s1"),
        RoomItem(first, 2, b"2", access_version=0),
        AccessItem(first, (82,), (b"removed",), False, 2, 1),
        RoomItem(first, 3, b"3", access_version=1),
        UsersItem((81,), b"u", 81),  # its partition is 81 % 4 = 1 too
        RoomItem(first, 0, b"typing", exclude_user=81),
    ]
    await redis_client.xgroup_create(stream, GROUP, id="0", mkstream=True)
    for item in items:
        await redis_client.xadd(stream, {"i": encode(item)})
    worker = Worker(worker_id="w")
    task = run(worker)
    try:
        # Acknowledged and recorded in one call: once recorded, nothing is pending.
        await until(lambda: _routed_at_least(redis_client, keys, first, 3))
        assert await _nothing_pending(redis_client, stream)
        assert await redis_client.xlen(keys.inbox(here)) == 1
        assert await redis_client.xlen(keys.inbox(there)) == 1
        at_here = await inbox(redis_client, keys, here)
        assert [(type(b).__name__, getattr(b, "seq", None)) for b in at_here] == [
            ("EventBatch", 1), ("EventBatch", 1), ("EventBatch", 2), ("EventBatch", 3),
            ("UsersBatch", None),
        ]  # fmt: skip
        # 82 got what was routed before its removal, the removal, and nothing after it (the
        # typing frame too is for the room's readers at that point).
        at_there = await inbox(redis_client, keys, there)
        assert at_there == [
            EventBatch(first, 1, b"1", (82,), at_there[0].sent),  # type: ignore[union-attr]
            EventBatch(first, 2, b"2", (82,), at_there[1].sent),  # type: ignore[union-attr]
            AccessBatch(first, False, 2, (82,), (b"removed",), 1),
        ]
        assert await _routed(redis_client, keys, first) == 3
        assert await _routed(redis_client, keys, second) == 1
        # A late writer (a holder that lost its lease) never takes a routed seq back.
        script = redis_client.register_script(ROUTED)
        await script(keys=[stream, keys.routed(1)], args=[GROUP, 0, first, 2, second, 5])
        assert await _routed(redis_client, keys, first) == 3
        assert await _routed(redis_client, keys, second) == 5
    finally:
        await stop(worker, task)


@pytest.mark.services
async def test_a_read_that_cannot_be_handed_over_at_once_is_routed_item_by_item(
    redis_client: aioredis.Redis, readers: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One room whose readers cannot be read fails the whole read's hand-off: the worker
    routes the read item by item, the bad item goes to the dead letters after its tries, and
    the others are handed over in order."""
    keys = Keys()
    good, bad = 4 * 15 + 2, 4 * 16 + 2  # partition 2
    readers[good] = frozenset({91})
    table = hooks.store.readers

    def readers_or_fail(room_id: int) -> tuple[frozenset[int], int]:
        if room_id == bad:
            raise ValueError("a room the store cannot read")
        return table(room_id)

    monkeypatch.setattr(hooks.store, "readers", readers_or_fail)
    gateway = await fake_gateway(redis_client, keys, [91])
    stream = keys.stream(2)
    await redis_client.xgroup_create(stream, GROUP, id="0", mkstream=True)
    for item in [RoomItem(good, 1, b"{}"), RoomItem(bad, 1, b"{}"), RoomItem(good, 2, b"{}")]:
        await redis_client.xadd(stream, {"i": encode(item)})
    worker = Worker(worker_id="w")
    task = run(worker)
    try:
        batches = await until(lambda: _event_batches(redis_client, keys, gateway, good, 2))
        assert [b.seq for b in batches] == [1, 2]
        dead = await until(lambda: _dead(redis_client, keys.dead(2), 1))
        assert [fields[b"why"] for _, fields in dead] == [b"failed"]
        lost = decode(dead[0][1][b"i"])
        assert isinstance(lost, RoomItem)
        assert (lost.room_id, lost.seq) == (bad, 1)
        await until(lambda: _nothing_pending(redis_client, stream))
        assert await _routed(redis_client, keys, good) == 2
    finally:
        await stop(worker, task)


@pytest.mark.services
async def test_a_lease_round_is_one_script_call(redis_client: aioredis.Redis, readers: Any) -> None:
    """Heartbeat, renewals and acquisitions of a round: one call to Redis, however many
    partitions the worker holds or tries (the partitions' own tasks and the housekeeping
    beside the round aside)."""
    worker = Worker(worker_id="w")
    worker.sweep_due, worker.sweep_every = False, 3600.0
    worker.last_sweep = worker.last_clean = time.monotonic()
    sent: list[Any] = []
    original = worker.client.execute_command

    async def counted(*args: Any, **kwargs: Any) -> Any:
        sent.append(args[0])
        return await original(*args, **kwargs)

    async def idle(partition: int) -> None:
        await asyncio.Event().wait()

    worker.client.execute_command = counted  # type: ignore[method-assign]
    worker._work = idle  # type: ignore[method-assign]
    other = Keys().lease(3)
    await redis_client.set(other, "another-worker", px=60_000)  # held elsewhere: tried
    try:
        await worker._round()  # the first loads the script into Redis, if no test did
        assert sorted(worker.held) == [0, 1, 2]
        for _ in range(3):
            sent.clear()
            await worker._round()
            assert [str(name).split()[0].upper() for name in sent] == ["EVALSHA"]
        assert sorted(worker.held) == [0, 1, 2]
        beats = await redis_client.zscore(Keys().workers(), "w")
        assert beats is not None
        # A round that failed part way left a lease taken in Redis without its task here:
        # the next round takes it up again rather than waiting for it to expire.
        worker.held.pop(2).cancel()
        await worker._round()
        assert sorted(worker.held) == [0, 1, 2]
    finally:
        worker.client.execute_command = original  # type: ignore[method-assign]
        worker.stop()
        await worker._shutdown()


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
    real_ack = worker.ack_routed
    failures = 0

    async def flaky_ack(*args: Any, **kwargs: Any) -> Any:
        nonlocal failures
        if failures < 3:
            failures += 1
            raise sync_redis.ConnectionError("connection reset")
        return await real_ack(*args, **kwargs)

    worker.ack_routed = flaky_ack  # type: ignore[assignment]
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
        # Link reach is kept per room (reach/store.py): the room's own keys.
        digest = digest_of(url)
        assert await redis_client.scard(f"{keys.shares(9, digest)}:{room}") == 1
        assert await redis_client.pfcount(f"{keys.reach(9, digest)}:{room}") == 2
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
