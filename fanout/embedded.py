"""The embedded transport: partitioned fan-out inside the server process.

Guarantees: every item published for room R is handled by partition ``R mod P`` in publish
order (one asyncio task per partition, which routes whatever its queue holds at once, in
order), so per room the hand-off to connections keeps commit order; grants, revocations and
cache invalidations of a room travel through the same partition and so take effect exactly
between the events before and after them. Queues are unbounded in
memory: the database holds every persistent event, so a process that dies loses only what
``sync`` replays. Duplicates are dropped by each connection's cursor (``fanout.delivery``).
Publishing from any thread is safe; publishing when no gateway runs in this process is a no-op
(no connection here could receive it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Iterable, Sequence

from django.conf import settings

from fanout import metrics
from fanout.connections import LocalConnections
from fanout.hooks import hooks
from fanout.items import Item, partition_of
from fanout.loops import raise_if_cancelled
from fanout.router import Router
from fanout.transport import Transport

logger = logging.getLogger(__name__)

# Items a partition routes at once at most (what its queue holds, up to this).
DRAIN_MAX = 500


async def _count_links(
    *,
    community_id: int,
    urls: Sequence[str],
    reader_ids: Collection[int],
    message: tuple[int, int],
) -> None:
    await hooks.links.record(
        community_id=community_id, urls=urls, reader_ids=reader_ids, message=message
    )


class Partitions:
    """The partitions of the embedded mode: one asyncio task per partition, each running the
    router with this process's connections as registry and hand-off."""

    def __init__(self, local: LocalConnections, partitions: int) -> None:
        self.local = local
        self.loop = local.loop
        self.partitions = partitions
        self.router = Router(local, local, _count_links)
        self.queues: list[asyncio.Queue[Item]] = [asyncio.Queue() for _ in range(partitions)]
        self.tasks = [self.loop.create_task(self._run(p)) for p in range(partitions)]

    def submit(self, items: Sequence[Item]) -> None:
        """Publish from any thread of this process: one hop to the loop for all the items."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            self._put(items)
            return
        try:
            self.loop.call_soon_threadsafe(self._put, items)
        except RuntimeError:  # the loop closed: no connection of this process is left
            logger.info("fan-out: partition loop closed, items dropped (clients resume with sync)")

    def _put(self, items: Iterable[Item]) -> None:
        for item in items:
            self.queues[partition_of(item, self.partitions)].put_nowait(item)

    async def _run(self, partition: int) -> None:
        queue = self.queues[partition]
        while True:
            items = [await queue.get()]
            while len(items) < DRAIN_MAX and not queue.empty():
                items.append(queue.get_nowait())
            try:
                await self.router.handle_many(items)
                continue
            except asyncio.CancelledError:
                raise
            except Exception:
                raise_if_cancelled()
                logger.warning("fan-out partition %s: routing %s items at once failed; one by "
                               "one", partition, len(items), exc_info=True)  # fmt: skip
            for item in items:
                try:
                    await self.router.handle(item)
                except asyncio.CancelledError:
                    raise
                except Exception:  # one bad item never stops the partition
                    raise_if_cancelled()
                    metrics.DROPS.labels("item_failed").inc()
                    logger.exception("fan-out partition %s: item failed", partition)

    def stop(self) -> None:
        for task in self.tasks:
            task.cancel()


class EmbeddedTransport(Transport):
    kind = "embedded"

    def __init__(self) -> None:
        super().__init__()
        self.partitions: Partitions | None = None

    def connections(self) -> LocalConnections:
        """The running loop's connections, with the partitions beside them."""
        local = super().connections()
        with self._lock:
            if self.partitions is None or self.partitions.local is not local:
                if self.partitions is not None:
                    self.partitions.stop()
                self.partitions = Partitions(local, settings.FANOUT_PARTITIONS)
        return local

    def on_request(self) -> None:
        if self.partitions is None:
            self.connections()

    def current_partitions(self) -> Partitions | None:
        partitions = self.partitions
        if partitions is None or partitions.loop.is_closed():
            return None
        return partitions

    def submit(self, item: Item) -> bool:
        return self.submit_many((item,))

    def submit_many(self, items: Sequence[Item]) -> bool:
        partitions = self.current_partitions()
        if partitions is not None and items:
            partitions.submit(items)
        return True

    def online(self, user_ids: Collection[int]) -> set[int]:
        local = self.current_connections()
        if local is None:
            return set()
        # A user whose offline is pending (closed within the grace) still counts as online.
        return {u for u in user_ids if u in local.connections or u in local.gone}

    async def ready(self) -> bool:
        # The partitions live in this process: they answer whenever the process does.
        return True

    def stop(self) -> None:
        if self.partitions is not None:
            self.partitions.stop()
        super().stop()
