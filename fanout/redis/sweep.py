"""The outbox sweep: committed room events that the workers never routed (a publish that
failed and whose retries gave up, a process that died between commit and publish, Redis that
lost its streams) are appended to their partition's stream again. Run by the worker holding
partition 0, beside its lease loop: on a slow pass (``FANOUT_SWEEP_EVERY_S``) and at once when
a publisher raised the sweep flag (docs/fanout.md).

The workers record per partition the highest seq they have routed in each room
(``Keys.routed``); the sweep compares the rooms' heads in the database with it. A room behind
its head gets what it lacks (committed more than ``FANOUT_SWEEP_AFTER_S`` ago: a younger event
may still be on its way). A room the workers have no record of (new to the tier, or Redis lost
the record) is looked back into at most ``SWEEP_LOOKBACK`` seqs, and its head recorded, so that
it is not read again at every pass. Only the tail of a room matters: a connection that gets a
later event fills a gap before it from the database. A duplicate this may cause is dropped by
each connection's cursor.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connection

from fanout import metrics
from fanout.hooks import StoredEvent, hooks
from fanout.items import RoomItem, encode
from fanout.redis.keys import GROUP, Keys
from fanout.redis.scripts import ROUTED

logger = logging.getLogger(__name__)
T = TypeVar("T")

SWEEP_LIMIT = 1000  # events published again in one pass at most
SWEEP_ROOMS = 500  # rooms read back from the database in one pass at most
SWEEP_LOOKBACK = 100  # seqs looked back into a room the workers have no record of
HMGET_CHUNK = 1000


async def sweep(client: aioredis.Redis, keys: Keys, partitions: int) -> bool:
    """One pass. Returns True when it stopped at one of its bounds with more to look at (the
    caller runs it again soon)."""
    heads = await _in_thread(hooks.store.heads)
    if not heads:
        return False
    routed = await _routed(client, keys, partitions, [room for room, _ in heads])
    # (room, after, head, known): rooms behind first, then those without a record.
    behind = [(room, routed[room], head, True) for room, head in heads
              if room in routed and routed[room] < head]  # fmt: skip
    unknown = [(room, max(0, head - SWEEP_LOOKBACK), head, False) for room, head in heads
               if room not in routed]  # fmt: skip
    todo = (behind + unknown)[:SWEEP_ROOMS]
    more = len(behind) + len(unknown) > len(todo)
    if not todo:
        return False
    events, record = await _in_thread(_read_back, todo)
    if events:
        async with client.pipeline(transaction=False) as pipe:
            for event in events:
                # Its access version is unknown: the partition reads the readers afresh.
                item = RoomItem(
                    event.room_id, event.seq, event.frame, None, event.community_id, event.urls
                )
                pipe.xadd(
                    keys.stream(event.room_id % partitions), {"i": encode(item)},
                    maxlen=settings.FANOUT_STREAM_MAXLEN, approximate=True,
                )  # fmt: skip
            await pipe.execute()
        metrics.SWEPT.inc(len(events))
        logger.info("fan-out sweep: published %s events again", len(events))
    if record:
        script = client.register_script(ROUTED)
        by_partition: dict[int, list[int]] = defaultdict(list)
        for room, seq in record.items():
            by_partition[room % partitions].extend((room, seq))
        for partition, pairs in by_partition.items():
            await script(
                keys=[keys.stream(partition), keys.routed(partition)], args=[GROUP, 0, *pairs]
            )
    return more or len(events) >= SWEEP_LIMIT


async def _in_thread(work: Callable[..., T], *args: Any) -> T:
    """Run a database query in a worker thread, and close that thread's connection after it:
    the sweep runs every half minute, not worth a connection held in between."""

    def closing() -> T:
        try:
            return work(*args)
        finally:
            connection.close()

    return await database_sync_to_async(closing, thread_sensitive=False)()


async def _routed(
    client: aioredis.Redis, keys: Keys, partitions: int, rooms: list[int]
) -> dict[int, int]:
    """The highest routed seq of each room that has a record."""
    by_partition: dict[int, list[int]] = defaultdict(list)
    for room in rooms:
        by_partition[room % partitions].append(room)
    asked: list[list[int]] = []
    async with client.pipeline(transaction=False) as pipe:
        for partition, theirs in by_partition.items():
            for start in range(0, len(theirs), HMGET_CHUNK):
                chunk = theirs[start : start + HMGET_CHUNK]
                pipe.hmget(keys.routed(partition), chunk)
                asked.append(chunk)
        answers = await pipe.execute()
    return {
        room: int(value)
        for chunk, values in zip(asked, answers, strict=True)
        for room, value in zip(chunk, values, strict=True)
        if value is not None
    }


def _read_back(
    todo: list[tuple[int, int, int, bool]],
) -> tuple[list[StoredEvent], dict[int, int]]:
    """The events to publish again, and the seqs to record for rooms without a record. Runs in
    a worker thread (it queries the database)."""
    store = hooks.store
    events: list[StoredEvent] = []
    record: dict[int, int] = {}
    for room, after, head, known in todo:
        room_limit = min(SWEEP_LIMIT - len(events), head - after)
        if room_limit <= 0:
            break
        # A room without a record is looked back into whatever the events' age: what is
        # found is published again before its head is recorded, and none found means every
        # event of its tail is older than the window, so the head can be recorded at once.
        found = store.events_after(
            room, after, room_limit, settings.FANOUT_SWEEP_AFTER_S if known else 0.0
        )
        events.extend(found)
        if not known:
            record[room] = head if len(found) < room_limit else found[-1].seq
    return events, record
