"""The scaled transport: the tier on Redis, by concept.

- ``keys``: clients (explicit pools and timeouts) and key names, each under a hash tag;
- ``scripts``: every Lua script;
- ``registry``: which gateway holds each user (register, unregister, locate, online, clean);
- ``link``: a gateway's side (registry entries, inbox reader, heartbeat);
- ``publisher``: items appended to partition streams, batches to gateway inboxes, the retrier;
- ``worker``: the partition worker (leases, reads, hand-off, dead letters);
- ``sweep``: the outbox sweep (room events the workers never routed).

Redis 7.0 commands only. Guarantees and failure handling: docs/fanout.md.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Sequence
from typing import Any

import redis.asyncio as aioredis
from django.conf import settings
from redis.exceptions import RedisError

from fanout import metrics
from fanout.connections import Link, LocalConnections
from fanout.items import AccessItem, CloseItem, Item
from fanout.transport import PartitionStats, Transport

logger = logging.getLogger(__name__)


class RedisTransport(Transport):
    kind = "redis"

    def submit(self, item: Item) -> bool:
        return self.submit_many((item,))

    def submit_many(self, items: Sequence[Item]) -> bool:
        """One pipelined append for all the items (not a transaction); when it fails they go
        to the background retrier, in order, and False is returned."""
        if not items:
            return True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:
            # Called from a gateway's event loop (typing, presence): publish off the loop.
            loop.run_in_executor(None, _publish_or_retry, tuple(items))
            return True
        return _publish_or_retry(items)

    def link(self) -> Callable[[LocalConnections], Link]:
        from fanout.redis.link import RedisLink

        return RedisLink

    def online(self, user_ids: Collection[int]) -> set[int]:
        from fanout.redis.registry import online_anywhere

        return online_anywhere(user_ids)

    async def ready(self) -> bool:
        """Redis answers a PING within the socket timeout."""
        from fanout.redis.keys import fanout_url

        # Pool size and timeouts are explicit: redis-py's defaults changed between versions.
        client: aioredis.Redis
        if settings.FANOUT_REDIS_CLUSTER:
            from redis.asyncio.cluster import RedisCluster

            client = RedisCluster.from_url(  # type: ignore[assignment]
                fanout_url(), socket_timeout=1.0, socket_connect_timeout=1.0
            )
        else:
            client = aioredis.Redis.from_url(
                fanout_url(), socket_timeout=1.0, socket_connect_timeout=1.0, max_connections=2
            )
        try:
            return bool(await client.ping())
        finally:
            await client.aclose()

    def partition_stats(self) -> list[PartitionStats] | None:
        from fanout.redis.keys import GROUP, Keys, sync_client, text

        keys = Keys()
        try:
            pipe = sync_client().pipeline(transaction=False)
            for partition in range(settings.FANOUT_PARTITIONS):
                pipe.xinfo_groups(keys.stream(partition))
                pipe.xlen(keys.dead(partition))
            answers = pipe.execute(raise_on_error=False)
        except RedisError:
            return []
        stats = []
        for partition in range(settings.FANOUT_PARTITIONS):
            groups, dead_count = answers[2 * partition], answers[2 * partition + 1]
            lag = pending = None
            if isinstance(groups, list):
                for group in groups:
                    if text(group.get("name")) == GROUP:
                        lag = float(group.get("lag") or 0)
                        pending = float(group.get("pending") or 0)
            elif "no such key" in str(groups).lower():  # nothing published there yet
                lag = pending = 0.0
            dead = float(dead_count) if isinstance(dead_count, int) else None
            stats.append(PartitionStats(partition, lag, pending, dead))
        return stats

    def shared_redis(self) -> Any:
        from fanout.redis.keys import sync_client

        return sync_client()

    def worker(self) -> Any:
        from fanout.redis.worker import Worker

        return Worker()


def _publish_or_retry(items: Sequence[Item]) -> bool:
    from fanout.redis.publisher import persistent, publish_many, retrier

    if publish_many(items):
        return True
    # Room events, access changes and closes are retried in order; ephemeral frames (read
    # markers, presence, typing) are not worth a late delivery.
    kept = [item for item in items if persistent(item) or isinstance(item, AccessItem | CloseItem)]
    if len(kept) < len(items):
        metrics.DROPS.labels("publish_failed").inc(len(items) - len(kept))
    retrier.add_many(kept)
    return False
