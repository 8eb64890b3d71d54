"""``publish_room_events``: a committed batch of room events handed to the transport in one go,
in order, in both modes; a batch Redis refuses is retried in the background."""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from fanout import publish
from fanout.connections import LocalConnections
from fanout.embedded import EmbeddedTransport
from fanout.items import Item, RoomItem, decode_item
from fanout.redis import keys as redis_keys
from fanout.redis import publisher
from fanout.redis.keys import Keys

PARTITIONS = 4


def items_for(rooms: list[int], count: int) -> list[RoomItem]:
    return [RoomItem(rooms[n % len(rooms)], n // len(rooms) + 1, b"{}") for n in range(count)]


# --- the embedded mode -------------------------------------------------------------------------


def test_the_embedded_mode_takes_a_batch_in_one_hop_to_the_loop_in_order(settings: Any) -> None:
    """From another thread (the writer's), a batch is one ``call_soon_threadsafe`` and each
    partition's queue gets its items in order."""
    settings.FANOUT_PARTITIONS = PARTITIONS
    loop = asyncio.new_event_loop()
    embedded = EmbeddedTransport()
    try:
        local = loop.run_until_complete(_connections(embedded))
        partitions = embedded.partitions
        assert partitions is not None
        assert partitions.local is local
        for task in partitions.tasks:  # the queues are looked at, not drained
            task.cancel()
        hops = 0
        real = loop.call_soon_threadsafe

        def counted(*args: Any, **kwargs: Any) -> Any:
            nonlocal hops
            hops += 1
            return real(*args, **kwargs)

        loop.call_soon_threadsafe = counted  # type: ignore[method-assign,assignment]
        items = items_for([4, 5, 9], 30)
        thread = threading.Thread(target=lambda: publish.publish_room_events(items))
        with _current(embedded):
            thread.start()
            thread.join()
        assert hops == 1
        loop.run_until_complete(asyncio.sleep(0))
        queued: dict[int, list[Item]] = {}
        for partition, queue in enumerate(partitions.queues):
            while not queue.empty():
                queued.setdefault(partition, []).append(queue.get_nowait())
        assert queued == {
            partition: [i for i in items if i.room_id % PARTITIONS == partition]
            for partition in (0, 1)
        }
    finally:
        embedded.stop()
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()


async def _connections(embedded: EmbeddedTransport) -> LocalConnections:
    return embedded.connections()


class _current:
    """Make ``transport.current()`` answer with the given transport."""

    def __init__(self, chosen: Any) -> None:
        self.chosen = chosen

    def __enter__(self) -> None:
        from fanout import transport

        self.saved = (transport._transport, transport._built_for)
        from django.conf import settings

        transport._transport, transport._built_for = self.chosen, bool(settings.SCALED)

    def __exit__(self, *exc: object) -> None:
        from fanout import transport

        transport._transport, transport._built_for = self.saved


async def test_an_embedded_partition_routes_what_its_queue_holds_at_once(settings: Any) -> None:
    settings.FANOUT_PARTITIONS = PARTITIONS
    embedded = EmbeddedTransport()
    try:
        embedded.connections()
        partitions = embedded.partitions
        assert partitions is not None
        reads: list[list[Item]] = []
        items = items_for([4, 8], 20)  # partition 0
        all_read = asyncio.Event()

        async def handle_many(read: Any, **kwargs: Any) -> bool:
            reads.append(list(read))
            if sum(map(len, reads)) >= len(items):
                all_read.set()
            return True

        partitions.router.handle_many = handle_many  # type: ignore[method-assign,assignment]
        embedded.submit_many(items)  # on the loop: queued at once
        await asyncio.wait_for(all_read.wait(), 10)
        assert reads == [items]
    finally:
        embedded.stop()


async def test_an_embedded_read_that_fails_at_once_is_routed_item_by_item(
    settings: Any,
) -> None:
    settings.FANOUT_PARTITIONS = PARTITIONS
    embedded = EmbeddedTransport()
    try:
        embedded.connections()
        partitions = embedded.partitions
        assert partitions is not None
        one_by_one: list[Item] = []
        items = [RoomItem(4, seq, b"{}") for seq in (1, 2, 3)]
        last = asyncio.Event()

        async def handle_many(read: Any, **kwargs: Any) -> bool:
            raise RuntimeError("one item of the read is bad")

        async def handle(item: Item) -> None:
            if item is items[-1]:
                last.set()
            if isinstance(item, RoomItem) and item.seq == 2:
                raise RuntimeError("the bad item")
            one_by_one.append(item)

        partitions.router.handle_many = handle_many  # type: ignore[method-assign,assignment]
        partitions.router.handle = handle  # type: ignore[method-assign]
        embedded.submit_many(items)
        await asyncio.wait_for(last.wait(), 10)
        assert one_by_one == [items[0], items[2]]
    finally:
        embedded.stop()


# --- the scaled mode ---------------------------------------------------------------------------


@pytest.fixture
def scaled(settings: Any) -> Iterator[Any]:
    url = os.environ.get("REDIS_URL", "")
    if not url:
        pytest.skip("needs REDIS_URL")
    settings.SCALED = True
    settings.REDIS_URL = url
    settings.FANOUT_REDIS_URL = ""
    settings.FANOUT_PREFIX = f"test-publish-{secrets.token_hex(4)}"
    settings.FANOUT_PARTITIONS = PARTITIONS
    redis_keys._sync = None
    client = redis.Redis.from_url(url)
    yield settings
    keys = list(client.scan_iter(match=f"{settings.FANOUT_PREFIX}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()
    redis_keys._sync = None


def in_streams(partitions: int) -> dict[int, list[Item]]:
    client = redis_keys.sync_client()
    keys = Keys()
    found: dict[int, list[Item]] = {}
    for partition in range(partitions):
        entries: Any = client.xrange(keys.stream(partition))
        if entries:
            found[partition] = [decode_item(fields[b"i"]) for _, fields in entries]
    return found


@pytest.mark.services
def test_the_scaled_mode_appends_a_batch_in_one_pipelined_round_trip(scaled: Any) -> None:
    client = redis_keys.sync_client()
    commands: list[Any] = []
    pipelines = 0
    real_command, real_pipeline = client.execute_command, client.pipeline

    def command(*args: Any, **kwargs: Any) -> Any:
        commands.append(args[0])
        return real_command(*args, **kwargs)

    def pipeline(*args: Any, **kwargs: Any) -> Any:
        nonlocal pipelines
        pipelines += 1
        assert kwargs.get("transaction") is False  # not a MULTI: partitions' tags differ
        return real_pipeline(*args, **kwargs)

    client.execute_command = command  # type: ignore[method-assign]
    client.pipeline = pipeline  # type: ignore[method-assign]
    items = items_for([4, 5, 9, 6], 40)
    assert publish.publish_room_events(items) is True
    assert (pipelines, commands) == (1, [])
    assert in_streams(PARTITIONS) == {
        partition: [i for i in items if i.room_id % PARTITIONS == partition]
        for partition in (0, 1, 2)
    }


@pytest.mark.services
def test_a_batch_redis_refuses_is_retried_in_order_and_raises_the_sweep_flag(
    scaled: Any,
) -> None:
    keys = Keys()
    client = redis.Redis.from_url(scaled.REDIS_URL)
    items = items_for([4, 8], 6)
    try:
        scaled.FANOUT_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
        assert publish.publish_room_events(items) is False
        scaled.FANOUT_REDIS_URL = ""
        deadline = time.monotonic() + 10
        while client.get(keys.sweep_due()) is None:
            assert time.monotonic() < deadline, "the retrier never went through"
            time.sleep(0.05)
        assert in_streams(PARTITIONS) == {0: items}
    finally:
        client.close()
        publisher.retrier.pending.clear()
