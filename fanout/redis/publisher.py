"""Appending to the tier's streams: items to their partition's stream (from any process, on
commit), batches to a gateway's inbox (from a partition worker).

Every append is trimmed far above any backlog (``FANOUT_STREAM_MAXLEN``, approximate). A
publish that failed is retried in the background (``Retrier``); once Redis takes this
process's items again, the publisher raises the sweep flag (``Keys.sweep_due``), so that the
outbox sweep looks at once for what the failure may have lost (docs/fanout.md).
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
from fanout.items import (
    AccessBatch,
    Batch,
    Bundle,
    CloseBatch,
    Item,
    RoomItem,
    encode,
    partition_of,
)
from fanout.redis.keys import Keys, sync_client

logger = logging.getLogger(__name__)

SWEEP_FLAG_TTL_S = 600
# An inbox entry carries at most about this many frame bytes; a larger read is split.
BUNDLE_BYTES = 1 << 20

# A publish of this process failed and the sweep flag has not been raised since.
_flag_owed = False


def publish(item: Item) -> bool:
    """Append the item to its partition's stream (synchronous: called on commit, from request
    threads); False when Redis did not take it."""
    return publish_many((item,))


def publish_many(items: Sequence[Item]) -> bool:
    """Append the items to their partitions' streams, in order, in one pipelined round trip
    (not a transaction); False when Redis did not take them all."""
    global _flag_owed
    if not items:
        return True
    keys = Keys()
    partitions, maxlen = settings.FANOUT_PARTITIONS, settings.FANOUT_STREAM_MAXLEN
    try:
        client = sync_client()
        if len(items) == 1:
            item = items[0]
            client.xadd(keys.stream(partition_of(item, partitions)), {"i": encode(item)},
                        maxlen=maxlen, approximate=True)  # fmt: skip
        else:
            pipe = client.pipeline(transaction=False)
            for item in items:
                pipe.xadd(keys.stream(partition_of(item, partitions)), {"i": encode(item)},
                          maxlen=maxlen, approximate=True)  # fmt: skip
            pipe.execute()
    except RedisError:
        logger.warning("fan-out: publishing %s item(s) failed", len(items))
        _flag_owed = True
        return False
    if _flag_owed:
        _raise_sweep_flag(keys)
    return True


def _raise_sweep_flag(keys: Keys) -> None:
    """Tell the holder of partition 0 to sweep now: what failed to publish here may have been
    lost (a retry that gave up, a process that died with its retries, Redis that lost its
    streams)."""
    global _flag_owed
    try:
        sync_client().set(keys.sweep_due(), "1", ex=SWEEP_FLAG_TTL_S)
        _flag_owed = False
    except RedisError:
        pass  # still owed: raised after the next publish that goes through


def persistent(item: Item) -> bool:
    """A room event stored in the database (the sweep can publish it again)."""
    return isinstance(item, RoomItem) and item.seq > 0


class Retrier:
    """Publishes that failed are retried in the background for up to ``RETRY_FOR_S`` (Redis
    restarting), in order, everything pending in one round trip. An access change has no other
    way to its partition; a room event that is given up on is left to the sweep."""

    RETRY_FOR_S = 60.0
    PERIOD_S = 0.5

    def __init__(self) -> None:
        self.pending: list[tuple[float, Item]] = []
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def add(self, item: Item) -> None:
        self.add_many((item,))

    def add_many(self, items: Sequence[Item]) -> None:
        if not items:
            return
        with self.lock:
            deadline = time.monotonic() + self.RETRY_FOR_S
            self.pending.extend((deadline, item) for item in items)
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._run, daemon=True, name="fanout-retry")
                self.thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(self.PERIOD_S)
            if not self.retry():
                return

    def retry(self) -> bool:
        """One attempt at everything pending; False when nothing is left."""
        with self.lock:
            now = time.monotonic()
            expired = [item for deadline, item in self.pending if deadline < now]
            self.pending = [(d, item) for d, item in self.pending if d >= now]
            batch = [item for _, item in self.pending]
            if not batch:
                self.thread = None
        for item in expired:
            if not persistent(item):
                metrics.DROPS.labels("publish_failed").inc()
        if not batch:
            return False
        if publish_many(batch):
            with self.lock:
                # Only what was sent: items added meanwhile stay, behind it.
                del self.pending[: len(batch)]
        return True


retrier = Retrier()


class RedisHandoff:
    """A partition worker's hand-off (``fanout.router.Handoff``): one pipelined round trip
    for a whole read, one inbox entry per gateway carrying its batches in order (a lone batch,
    or a bundle of them)."""

    def __init__(self, client: aioredis.Redis, keys: Keys) -> None:
        self.client = client
        self.keys = keys
        self.maxlen = settings.FANOUT_STREAM_MAXLEN

    async def send(self, batches: Sequence[tuple[str, Batch]]) -> None:
        if not batches:
            return
        by_gateway: dict[str, list[Batch]] = {}
        for gateway, batch in batches:
            by_gateway.setdefault(gateway, []).append(batch)
        async with self.client.pipeline(transaction=False) as pipe:
            for gateway, theirs in by_gateway.items():
                for entry in _entries(theirs):
                    pipe.xadd(
                        self.keys.inbox(gateway), {"b": entry}, maxlen=self.maxlen,
                        approximate=True,
                    )  # fmt: skip
            await pipe.execute()
        metrics.HANDOFFS.inc(len(batches))


def _weight(batch: Batch) -> int:
    if isinstance(batch, AccessBatch):
        return sum(map(len, batch.frames))
    if isinstance(batch, CloseBatch):
        return 0
    return len(batch.frame)


def _entries(batches: list[Batch]) -> list[bytes]:
    """A gateway's batches as inbox entries, in order: one, or bundles of about
    ``BUNDLE_BYTES`` of frames each."""
    if len(batches) == 1:
        return [encode(batches[0])]
    entries: list[bytes] = []
    run: list[Batch] = []
    size = 0
    for batch in batches:
        weight = _weight(batch)
        if run and size + weight > BUNDLE_BYTES:
            entries.append(encode(Bundle(tuple(run))) if len(run) > 1 else encode(run[0]))
            run, size = [], 0
        run.append(batch)
        size += weight
    entries.append(encode(Bundle(tuple(run))) if len(run) > 1 else encode(run[0]))
    return entries
