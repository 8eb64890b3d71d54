"""A gateway's presence in Redis: its registry entries, its inbox reader and its heartbeat.

The gateway registers its users before their ``hello`` (so a partition that handles an event
after the connection opened finds it), reads the batches workers append to its inbox stream
(an entry holds one batch or a bundle of them), and heartbeats. When Redis lost the registry
(a restart) it registers again and lets every connection catch up from the database, so
nothing missed in between stays missing. At idle a gateway sends Redis one blocking read per
``BLOCK_MS`` and one heartbeat round trip per ``HEARTBEAT_S``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection
from typing import TYPE_CHECKING, Any, cast

import redis.asyncio as aioredis

from fanout import metrics
from fanout.items import Malformed, decode_batches
from fanout.loops import raise_if_cancelled
from fanout.redis.keys import BLOCK_MS, Keys, async_client
from fanout.redis.registry import GatewayEntries

if TYPE_CHECKING:
    from fanout.connections import LocalConnections

logger = logging.getLogger(__name__)

# Workers take a gateway silent for ``registry.LIVE_MS`` (15 s) for dead: several beats fit.
HEARTBEAT_S = 3.0
MARK_TTL_S = 60
RECOVER_AGAIN_S = (3.0, 8.0)
INBOX_COUNT = 500


class RedisLink:
    """What ``LocalConnections`` needs of Redis (``fanout.connections.Link``)."""

    def __init__(self, local: LocalConnections) -> None:
        self.local = local
        self.keys = Keys()
        self.client: aioredis.Redis = async_client()
        self.reader: aioredis.Redis = async_client(blocking=True)  # blocking reads: own pool
        self.entries = GatewayEntries(self.client, self.keys, local.id)
        self.last_id = "0-0"
        self.ready = asyncio.Event()  # in the gateways set: workers send to it
        self.tasks = [
            local.loop.create_task(self._inbox()),
            local.loop.create_task(self._heartbeat()),
        ]

    async def admit(self, user_id: int, here: int, limit: int) -> tuple[int, bool]:
        await asyncio.wait_for(self.ready.wait(), timeout=10)
        return await self.entries.admit(user_id, here, limit)

    async def register(self, user_id: int) -> int:
        """Put the user back with this gateway's connections of the user, under no cap."""
        here = len(self.local.connections.get(user_id, ()))
        return (await self.admit(user_id, max(here, 1), 0))[0]

    async def count(self, user_id: int, here: int) -> None:
        await self.entries.count(user_id, here)

    async def unregister(self, user_id: int, token: str = "") -> int:
        return await self.entries.unregister(user_id, token)

    async def offline_due(self, user_id: int, token: str) -> bool:
        return await self.entries.offline_due(user_id, token)

    async def online(self, user_ids: Collection[int]) -> set[int]:
        return await self.entries.online(user_ids)

    async def _inbox(self) -> None:
        key = self.keys.inbox(self.local.id)
        while True:
            try:
                answer = await self.reader.xread(
                    {key: self.last_id}, count=INBOX_COUNT, block=BLOCK_MS
                )
            except asyncio.CancelledError:
                raise
            except Exception:
                raise_if_cancelled()
                logger.warning("fan-out: gateway inbox read failed; retrying")
                await asyncio.sleep(0.5)
                continue
            for _stream, entries in cast(Any, answer) or ():
                for entry_id, fields in entries:
                    self.last_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                    try:
                        batches = decode_batches(fields[b"b"])
                    except (Malformed, KeyError):
                        metrics.DROPS.labels("malformed_batch").inc()
                        logger.error("fan-out: malformed batch in gateway inbox skipped")
                        continue
                    for batch in batches:
                        self.local.apply(batch)

    async def _heartbeat(self) -> None:
        mark = self.keys.mark(self.local.id)
        started = False
        # A re-registration still to do (it failed part way): whether Redis had lost its data.
        owed: bool | None = None
        while True:
            try:
                now_ms = int(time.time() * 1000)
                # One round trip: the heartbeat, and the mark's lease extended where it still
                # is (XX), its old value telling whether it was. A mark found gone is made again
                # only after the re-registration is owed: a beat whose reply is lost after
                # Redis ran it leaves a missing mark missing, so the next beat still sees it.
                async with self.client.pipeline(transaction=False) as pipe:
                    pipe.zadd(self.keys.gateways(), {self.local.id: now_ms})
                    pipe.set(mark, "1", ex=MARK_TTL_S, xx=True, get=True)
                    _, had_mark = await pipe.execute()
                self.ready.set()
                if had_mark is None:
                    if owed is None:
                        owed = started
                    # Before registering: a removal of entries after this (a worker taking the
                    # gateway for dead removes the mark after them) shows at the next beat.
                    await self.client.set(mark, "1", ex=MARK_TTL_S)
                if owed is not None:
                    await self._reregister(lost=owed)
                    owed = None
                started = True
            except asyncio.CancelledError:
                raise
            except Exception:
                raise_if_cancelled()
                logger.warning("fan-out: gateway heartbeat failed; retrying")
            await asyncio.sleep(HEARTBEAT_S)

    async def _reregister(self, *, lost: bool) -> None:
        """Put every local user (back) in the registry. When Redis lost its data (a restart),
        the streams lost what they held too: every connection catches up from the database."""
        local = self.local
        for user_id in list(local.connections):
            async with local.user_lock(user_id):
                if user_id in local.connections:
                    await self.register(user_id)
                    local.registered.add(user_id)
        if lost:
            logger.warning("fan-out: the registry was lost (Redis restarted?); recovering")
            local.recover()
            # Events routed between Redis coming back and this registration found nobody
            # here; they are in the database by now or soon: look again after a while.
            for delay in RECOVER_AGAIN_S:
                local.loop.call_later(delay, local.recover)

    def stop(self) -> None:
        if self.local.loop.is_closed():
            return
        for task in self.tasks:
            task.cancel()
