"""The outbox sweep: committed room events that were never marked published (the publish on
commit failed, or the process died between commit and publish) are appended to their
partition's stream again, then marked. Run by the worker holding partition 0, beside its lease
loop. A duplicate this may cause is dropped by each connection's cursor (docs/fanout.md)."""

from __future__ import annotations

import logging

import redis.asyncio as aioredis
from channels.db import database_sync_to_async
from django.conf import settings

from fanout import metrics
from fanout.hooks import hooks
from fanout.items import RoomItem, encode, partition_of
from fanout.redis.keys import Keys

logger = logging.getLogger(__name__)

SWEEP_LIMIT = 500


async def sweep(client: aioredis.Redis, keys: Keys, partitions: int) -> int:
    """Publish again what the store has left unpublished; returns how many events."""
    store = hooks.store
    events = await database_sync_to_async(store.unpublished, thread_sensitive=False)(
        settings.FANOUT_SWEEP_AFTER_S, SWEEP_LIMIT
    )
    if not events:
        return 0
    async with client.pipeline(transaction=False) as pipe:
        for event in events:
            # Its access version is unknown: the partition reads the readers afresh.
            item = RoomItem(
                event.room_id, event.seq, event.frame, None, event.community_id, event.urls
            )
            pipe.xadd(
                keys.stream(partition_of(item, partitions)), {"i": encode(item)},
                maxlen=settings.FANOUT_STREAM_MAXLEN, approximate=True,
            )  # fmt: skip
        await pipe.execute()
    await database_sync_to_async(store.mark_published, thread_sensitive=False)(
        [(e.room_id, e.seq) for e in events]
    )
    metrics.SWEPT.inc(len(events))
    logger.info("fan-out sweep: published %s events again", len(events))
    return len(events)
