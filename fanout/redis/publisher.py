"""Appending to the tier's streams: items to their partition's stream (from any process, on
commit), batches to a gateway's inbox (from a partition worker).

Every append is trimmed far above any backlog (``FANOUT_STREAM_MAXLEN``, approximate).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

import redis.asyncio as aioredis
from django.conf import settings
from redis.exceptions import RedisError

from fanout import metrics
from fanout.items import Batch, Item, encode, partition_of
from fanout.redis.keys import Keys, sync_client

logger = logging.getLogger(__name__)


def publish(item: Item) -> bool:
    """Append the item to its partition's stream (synchronous: called on commit, from request
    threads); False when Redis did not take it (a persistent event is then published again
    by the sweep)."""
    stream = Keys().stream(partition_of(item, settings.FANOUT_PARTITIONS))
    try:
        sync_client().xadd(
            stream, {"i": encode(item)}, maxlen=settings.FANOUT_STREAM_MAXLEN, approximate=True
        )
        return True
    except RedisError:
        logger.warning("fan-out: publishing to %s failed", stream)
        return False


class Retrier:
    """Access changes have no outbox row: a publish that failed is retried in the background
    for up to ``RETRY_FOR_S`` (Redis restarting), in order."""

    RETRY_FOR_S = 60.0

    def __init__(self) -> None:
        self.pending: list[tuple[float, Item]] = []
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def add(self, item: Item) -> None:
        with self.lock:
            self.pending.append((time.monotonic() + self.RETRY_FOR_S, item))
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._run, daemon=True, name="fanout-retry")
                self.thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(0.5)
            with self.lock:
                if not self.pending:
                    self.thread = None
                    return
                deadline, item = self.pending[0]
            if publish(item) or time.monotonic() > deadline:
                with self.lock:
                    self.pending.pop(0)
                    if time.monotonic() > deadline:
                        metrics.DROPS.labels("publish_failed").inc()


retrier = Retrier()


class RedisHandoff:
    """A partition worker's hand-off (``fanout.router.Handoff``): one pipelined append per
    gateway inbox."""

    def __init__(self, client: aioredis.Redis, keys: Keys) -> None:
        self.client = client
        self.keys = keys
        self.maxlen = settings.FANOUT_STREAM_MAXLEN

    async def send(self, batches: Sequence[tuple[str, Batch]]) -> None:
        if not batches:
            return
        async with self.client.pipeline(transaction=False) as pipe:
            for gateway, batch in batches:
                pipe.xadd(
                    self.keys.inbox(gateway), {"b": encode(batch)}, maxlen=self.maxlen,
                    approximate=True,
                )  # fmt: skip
            await pipe.execute()
        metrics.HANDOFFS.inc(len(batches))
