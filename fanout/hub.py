"""The embedded transport: partitioned fan-out inside the server process.

Guarantees: every item published for room R is handled by partition ``R mod P`` in publish
order (one asyncio task per partition), so per room the hand-off to connections keeps commit
order; grants, revocations and cache invalidations of a room travel through the same partition
and so take effect exactly between the events before and after them. Queues are unbounded in
memory: the database holds every persistent event, so a process that dies loses only what
``sync`` replays. Duplicates are dropped by each connection's cursor (``fanout.delivery``).
Publishing from any thread is safe; publishing when no gateway runs in this process is a no-op
(no connection here could receive it).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from django.conf import settings

from fanout import metrics
from fanout.gateway import Gateway, gateway_for_running_loop
from fanout.items import Item, partition_of
from fanout.loops import raise_if_cancelled
from fanout.router import Reach, Router

logger = logging.getLogger(__name__)


def _reach() -> Reach | None:
    try:
        from fanout.reach import record
    except ImportError:  # pragma: no cover - reach is part of every install
        return None
    return record


class Hub:
    """The partitions of the embedded mode: one asyncio task per partition, each running the
    router with this process's gateway as registry and hand-off."""

    def __init__(self, gateway: Gateway, partitions: int) -> None:
        self.gateway = gateway
        self.loop = gateway.loop
        self.partitions = partitions
        self.router = Router(gateway, gateway, _reach())
        self.queues: list[asyncio.Queue[Item]] = [asyncio.Queue() for _ in range(partitions)]
        self.tasks = [self.loop.create_task(self._run(p)) for p in range(partitions)]

    def submit(self, item: Item) -> None:
        """Publish from any thread of this process."""
        queue = self.queues[partition_of(item, self.partitions)]
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            queue.put_nowait(item)
            return
        try:
            self.loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the loop closed: no connection of this process is left
            logger.info("fan-out: hub loop closed, item dropped (clients resume with sync)")

    async def _run(self, partition: int) -> None:
        queue = self.queues[partition]
        while True:
            item = await queue.get()
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


_hub: Hub | None = None
_lock = threading.Lock()


def hub_for_running_loop() -> Hub:
    """The embedded partitions of the event loop this server runs in, started on first use."""
    global _hub
    gateway = gateway_for_running_loop()
    with _lock:
        if _hub is None or _hub.gateway is not gateway:
            if _hub is not None:
                _hub.stop()
            _hub = Hub(gateway, settings.FANOUT_PARTITIONS)
        return _hub


def start_with_server(app: Any) -> Any:
    """Wrap the ASGI application so that the embedded partitions start with the server's
    first request of any kind, not only with its first WebSocket: a message posted over REST
    while nobody is connected is still fanned out (link reach counts every reader)."""

    async def application(scope: Any, receive: Any, send: Any) -> Any:
        if not settings.SCALED and _hub is None:
            hub_for_running_loop()
        return await app(scope, receive, send)

    return application


def current_hub() -> Hub | None:
    hub = _hub
    if hub is None or hub.loop.is_closed():
        return None
    return hub
