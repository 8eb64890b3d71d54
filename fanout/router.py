"""The partition worker's logic, the same in both modes: who reads, where they are, hand-off.

For each item a partition takes in order: the room's readers come from a cache that access
items of the same partition invalidate, and that a room event committed after a change of
readers (a higher access version than the cache's) refreshes before it is routed, even when
the change's own item comes later; the registry says which gateways hold those users; each
gateway gets one batch with the frame encoded once and its local recipients. ``handle_many``
does the same for a whole read of the partition: the readers item by item in order (so the
cache and access-version rules are those of ``handle``), then one registry look-up for all
their recipients and one hand-off carrying every gateway's batches in order. The embedded
mode plugs in the process's own connections as registry and hand-off (``fanout.embedded``);
the scaled mode plugs in Redis (``fanout.redis``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Sequence
from typing import Protocol

from channels.db import database_sync_to_async

from fanout import metrics
from fanout.hooks import hooks
from fanout.items import (
    AccessBatch,
    AccessItem,
    Batch,
    CloseBatch,
    CloseItem,
    EventBatch,
    Item,
    RoomItem,
    UsersBatch,
)

logger = logging.getLogger(__name__)

READERS_CACHE_ROOMS = 50_000
# A backstop for changes made outside the services (a database edit): the cache is refreshed
# at least this often even when no access item arrives.
READERS_TTL_S = 60.0


class Registry(Protocol):
    async def locate(self, user_ids: Collection[int]) -> dict[str, list[int]]:
        """Gateway id -> the given users connected to it (users nowhere are left out)."""


class Handoff(Protocol):
    async def send(self, batches: Sequence[tuple[str, Batch]]) -> None:
        """Hand each batch to its gateway, each gateway's in the given order; raises when a
        hand-off could not be made."""


class Reach(Protocol):
    async def __call__(
        self,
        *,
        community_id: int,
        urls: Sequence[str],
        reader_ids: Collection[int],
        message: tuple[int, int],
    ) -> None: ...


class Router:
    def __init__(self, registry: Registry, handoff: Handoff, reach: Reach | None = None) -> None:
        self.registry = registry
        self.handoff = handoff
        self.reach = reach
        # room -> (readers, the room's access version they were read at, expiry)
        self.readers: dict[int, tuple[frozenset[int], int, float]] = {}

    def forget(self, partition: int, partitions: int) -> None:
        """Drop the cached readers of a partition's rooms (it may have had another holder)."""
        for room_id in [r for r in self.readers if r % partitions == partition]:
            del self.readers[room_id]

    async def handle(self, item: Item) -> None:
        if isinstance(item, RoomItem):
            targets = await self._targets(item)
        else:
            if isinstance(item, AccessItem):
                self.readers.pop(item.room_id, None)
            targets = item.user_ids
        where = await self.registry.locate(targets)
        await self.handoff.send(
            [(gateway, _batch(item, users)) for gateway, users in where.items()]
        )

    async def handle_many(
        self, items: Sequence[Item], *, may_send: Callable[[], bool] | None = None
    ) -> bool:
        """Route items of one partition, in order, as ``handle`` would one by one, with one
        registry look-up and one hand-off for all of them. The readers of each room item are
        found in order, an access item dropping its room's cache where it stands, so a change
        takes effect exactly between the events before and after it; each gateway then gets its
        batches in the items' order. ``may_send`` is asked just before the hand-off: when it
        says no (the partition's lease is not known valid), nothing is handed over and False is
        returned. Raises like ``handle``; the caller may then route the items one by one."""
        plan: list[tuple[Item, Collection[int]]] = []
        everyone: set[int] = set()
        for item in items:
            if isinstance(item, RoomItem):
                targets = await self._targets(item)
            else:
                if isinstance(item, AccessItem):
                    self.readers.pop(item.room_id, None)
                targets = item.user_ids
            plan.append((item, targets))
            everyone.update(targets)
        where = await self.registry.locate(everyone) if everyone else {}
        gateways_of: dict[int, list[str]] = {}
        for gateway, users in where.items():
            for user_id in users:
                gateways_of.setdefault(user_id, []).append(gateway)
        batches: list[tuple[str, Batch]] = []
        # The same readers (one cached set for a room's events) are split by gateway once.
        split: dict[int, tuple[Collection[int], dict[str, list[int]]]] = {}
        for item, targets in plan:
            known = split.get(id(targets))
            if known is None or known[0] is not targets:
                by_gateway: dict[str, list[int]] = {}
                for user_id in targets:
                    for gateway in gateways_of.get(user_id, ()):
                        by_gateway.setdefault(gateway, []).append(user_id)
                known = split[id(targets)] = (targets, by_gateway)
            for gateway, users in known[1].items():
                batches.append((gateway, _batch(item, users)))
        if may_send is not None and not may_send():
            return False
        await self.handoff.send(batches)
        return True

    async def _targets(self, item: RoomItem) -> Collection[int]:
        """The room item's recipients (its link reach counted on the way)."""
        # A persistent event is checked against the cache's access version (an ephemeral
        # frame such as typing is not: a stale audience for it costs nothing).
        version = item.access_version if item.seq > 0 else None
        readers = await self._readers(item.room_id, version)
        if item.urls and self.reach is not None:
            await self.reach(
                community_id=item.community_id,
                urls=item.urls,
                reader_ids=readers,
                message=(item.room_id, item.seq),
            )
        if item.exclude_user is not None and item.exclude_user in readers:
            return readers - {item.exclude_user}
        return readers

    async def _readers(self, room_id: int, version: int | None) -> frozenset[int]:
        """The room's readers; ``version`` (-1: unknown) is the access version the caller's
        event was committed at: a cache read at an older version is read again."""
        cached = self.readers.get(room_id)
        now = time.monotonic()
        if (
            cached is not None
            and cached[2] > now
            and (version is None or 0 <= version <= cached[1])
        ):
            metrics.READERS_CACHE.labels("hit").inc()
            return cached[0]
        metrics.READERS_CACHE.labels("miss").inc()
        answer: tuple[frozenset[int], int] | None = None
        for attempt in range(3):
            try:
                answer = await database_sync_to_async(hooks.store.readers, thread_sensitive=False)(
                    room_id
                )
                break
            except Exception:
                if attempt == 2:
                    raise
                await asyncio.sleep(0.05 * (attempt + 1))
        assert answer is not None
        readers, read_at = answer
        if len(self.readers) >= READERS_CACHE_ROOMS:
            self.readers.clear()
        self.readers[room_id] = (readers, read_at, now + READERS_TTL_S)
        return readers


def _batch(item: Item, users: list[int]) -> Batch:
    """The item's batch for one gateway holding ``users``."""
    if isinstance(item, RoomItem):
        return EventBatch(item.room_id, item.seq, item.frame, tuple(users), item.sent)
    if isinstance(item, AccessItem):
        frame_of = dict(zip(item.user_ids, item.frames, strict=True))
        return AccessBatch(
            item.room_id,
            item.grant,
            item.head_seq,
            tuple(users),
            tuple(frame_of[u] for u in users),
            item.version,
        )
    if isinstance(item, CloseItem):
        return CloseBatch(item.code, item.credential, tuple(users))
    return UsersBatch(item.frame, tuple(users))
