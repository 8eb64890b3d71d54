"""The gateway registry in Redis: which gateway process holds each connected user.

A user shard's hash (``Keys.where``) maps a user id to the space-separated ids of the gateways
holding one of the user's connections; the sorted set ``Keys.gateways`` scores each gateway by
its last heartbeat. Gateways register and unregister their users (``GatewayEntries``);
partition workers locate a room's readers, shard by shard, and clean the entries of gateways
that stopped heartbeating (``RedisRegistry``); presence asks who is online (``online_anywhere``).

Beside it, in the same shard (one hash tag, so each script runs on one node): the connections
each gateway holds per user (``counts_key``, the per-user cap ``WS_MAX_PER_USER`` summed over
the live gateways) and each user's pending ``offline`` (``gone_key``: the token of the close
that left the user with no connection, until the grace ends or the user comes back).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Collection
from typing import Any, cast

import redis.asyncio as aioredis
from django.conf import settings
from redis.exceptions import RedisError

from fanout.connections import TooManyConnections, pending_online
from fanout.redis.keys import Keys, sync_client, text
from fanout.redis.scripts import ADMIT, LOCATE, OFFLINE, UNREGISTER

logger = logging.getLogger(__name__)

# A gateway whose heartbeat is older than this is taken for dead.
LIVE_MS = 15_000
LARGE_ROOM = 2_000  # readers above this are looked up shard by shard, concurrently


# How long a gateway trusts its list of the live gateways (for the per-user cap and offline).
LIVE_REFRESH_S = 3.0


def counts_key(keys: Keys, shard: int) -> str:
    """Hash of a user shard: "user gateway" -> how many connections of the user it holds."""
    return f"{keys.prefix}:{{u{shard}}}:conns"


def gone_key(keys: Keys, shard: int) -> str:
    """Hash of a user shard: user id -> the token of the user's pending ``offline``."""
    return f"{keys.prefix}:{{u{shard}}}:gone"


def shard_of(user_id: int, shards: int) -> int:
    return user_id % shards


def by_shard(user_ids: Collection[int], shards: int) -> dict[int, list[int]]:
    grouped: dict[int, list[int]] = defaultdict(list)
    for user_id in user_ids:
        grouped[shard_of(user_id, shards)].append(user_id)
    return grouped


class GatewayEntries:
    """One gateway's own entries: register and unregister its users, ask who is online."""

    def __init__(self, client: aioredis.Redis, keys: Keys, gateway_id: str) -> None:
        self.client = client
        self.keys = keys
        self.gateway_id = gateway_id
        self.shards = settings.FANOUT_USER_SHARDS
        self.admit_script = client.register_script(ADMIT)
        self.unregister_script = client.register_script(UNREGISTER)
        self.offline_script = client.register_script(OFFLINE)
        self.live = ""
        self.live_at = -LIVE_REFRESH_S

    def _keys(self, user_id: int) -> list[str]:
        shard = shard_of(user_id, self.shards)
        return [
            self.keys.where(shard),
            counts_key(self.keys, shard),
            gone_key(self.keys, shard),
        ]

    async def _live(self) -> str:
        """The live gateways, space-separated, this one included; read again every few
        seconds (a gateway started since counts for nothing until then)."""
        if time.monotonic() - self.live_at > LIVE_REFRESH_S:
            now_ms = int(time.time() * 1000)
            ids = await self.client.zrangebyscore(self.keys.gateways(), now_ms - LIVE_MS, "+inf")
            self.live = " ".join({text(i) for i in ids} | {self.gateway_id})
            self.live_at = time.monotonic()
        return self.live

    async def admit(self, user_id: int, here: int, limit: int) -> tuple[int, bool]:
        """Record that this gateway holds ``here`` connections of the user, unless the live
        gateways would hold more than ``limit`` (0: no cap): TooManyConnections. Returns how
        many other gateways hold the user, and whether a pending offline was cancelled."""
        for attempt in range(5):
            try:
                live = await self._live()
                answer = await self.admit_script(
                    keys=self._keys(user_id),
                    args=[user_id, self.gateway_id, here, limit, live],
                )
                break
            except RedisError:
                if attempt == 4:
                    raise
                await asyncio.sleep(0.1 * (attempt + 1))
        others, resumed = (int(v) for v in cast(list[Any], answer))
        if others < 0:
            raise TooManyConnections
        return others, bool(resumed)

    async def count(self, user_id: int, here: int) -> None:
        """This gateway now holds ``here`` connections of the user (after a close)."""
        key = counts_key(self.keys, shard_of(user_id, self.shards))
        try:
            await self.client.hset(key, f"{user_id} {self.gateway_id}", here)
        except RedisError:
            # Counted high until the user's next open or close here: the cap errs on the safe side.
            logger.warning("fan-out: could not update a user's connection count")

    async def unregister(self, user_id: int, token: str = "") -> int:
        """Remove the user; returns how many gateways still hold the user. At none, with a
        ``token``, the user's offline becomes pending under it."""
        args: list[Any] = [user_id, self.gateway_id] + ([token] if token else [])
        try:
            return int(await self.unregister_script(keys=self._keys(user_id), args=args))
        except RedisError:
            # The heartbeat stops; workers skip a dead gateway and clean its entries.
            logger.warning("fan-out: could not unregister a user from the registry")
            return 0

    async def offline_due(self, user_id: int, token: str) -> bool:
        """The pending offline under ``token`` is taken, when no live gateway holds the user."""
        try:
            live = await self._live()
            taken = await self.offline_script(keys=self._keys(user_id), args=[user_id, token, live])
        except RedisError:
            logger.warning("fan-out: could not read a user's pending offline")
            return False
        return bool(int(taken))

    async def online(self, user_ids: Collection[int]) -> set[int]:
        """Users held by a gateway, or whose offline is pending (see ``online_anywhere``)."""
        grouped = by_shard(user_ids, self.shards)
        async with self.client.pipeline(transaction=False) as pipe:
            for shard, users in grouped.items():
                pipe.hmget(self.keys.where(shard), users)
                pipe.hmget(gone_key(self.keys, shard), users)
            answers = await pipe.execute()
        found: set[int] = set()
        now_ms, grace = int(time.time() * 1000), settings.PRESENCE_GRACE_S
        for index, users in enumerate(grouped.values()):
            held, gone = answers[2 * index], answers[2 * index + 1]
            for user_id, where, token in zip(users, held, gone, strict=True):
                if where or pending_online(token, now_ms, grace):
                    found.add(user_id)
        return found


class RedisRegistry:
    """The registry as a partition worker reads it (``fanout.router.Registry``)."""

    def __init__(self, client: aioredis.Redis, keys: Keys) -> None:
        self.client = client
        self.keys = keys
        self.shards = settings.FANOUT_USER_SHARDS
        self.live: set[str] = set()
        self.live_at = 0.0
        self.stale: list[tuple[int, str]] = []
        # Gateways some of whose entries were removed and whose mark is still to be removed.
        self.unmark: set[str] = set()
        self.unregister = client.register_script(UNREGISTER)
        self.locate_script = client.register_script(LOCATE)

    async def refresh(self) -> set[str]:
        """Read the live gateways again; returns this read's set (another task's read, sent
        earlier, may replace ``self.live`` after it)."""
        now_ms = int(time.time() * 1000)
        ids = await self.client.zrangebyscore(self.keys.gateways(), now_ms - LIVE_MS, "+inf")
        live = {text(i) for i in ids}
        self.live = live
        self.live_at = time.monotonic()
        return live

    async def locate(self, user_ids: Collection[int]) -> dict[str, list[int]]:
        if not user_ids:
            return {}
        if time.monotonic() - self.live_at > 1.0:
            await self.refresh()
        # One script call per user shard, with the ids in one argument and the answer grouped
        # by gateway: encoding a thousand arguments and parsing a thousand replies per message
        # was most of a worker's time.
        calls = [
            (self.keys.where(shard), ",".join(map(str, users)))
            for shard, users in by_shard(user_ids, self.shards).items()
        ]
        if len(user_ids) > LARGE_ROOM or settings.FANOUT_REDIS_CLUSTER:
            # A huge room: its user shards are looked up concurrently, each on a connection of
            # its own (on a cluster, on their own nodes, where a pipeline of scripts is
            # refused), and merged per gateway.
            answers = await asyncio.gather(
                *(self.locate_script(keys=[key], args=[ids]) for key, ids in calls)
            )
        else:
            async with self.client.pipeline(transaction=False) as pipe:
                for key, ids in calls:
                    await self.locate_script(keys=[key], args=[ids], client=pipe)  # queued
                answers = await pipe.execute()
        where: dict[str, list[int]] = defaultdict(list)
        unknown: list[tuple[list[int], str]] = []
        for answer in answers:
            pairs = cast(list[bytes], answer)
            for index in range(0, len(pairs), 2):
                gateway = text(pairs[index])
                users = list(map(int, pairs[index + 1].split(b",")))
                if gateway in self.live:
                    where[gateway].extend(users)
                else:
                    unknown.append((users, gateway))
        if unknown:
            # Judged on a read of the live gateways made after the look-up answered: a gateway
            # heartbeats before it registers anyone, so one that holds these users was in the
            # set by then. A read from before the look-up (however recent) may predate a new
            # gateway's first heartbeat, and would have its users removed for good.
            live = await self.refresh()
            for users, gateway in unknown:
                if gateway in live:
                    where[gateway].extend(users)
                else:
                    for user_id in users:
                        if len(self.stale) < 1000:
                            self.stale.append((user_id, gateway))
        return where

    async def clean(self) -> None:
        """Remove registry entries of gateways that stopped heartbeating, and their inboxes.

        A gateway taken for dead when its entries were found may have been only late: entries
        of one that heartbeats again are left alone, and where entries go, the gateway's mark
        goes after them, so that a gateway still running finds the mark gone at its next
        heartbeat, registers its users again and has its connections catch up from the
        database (docs/fanout.md, "Gateways"). A mark still owed (the cleaning failed part way)
        is removed at the next cleaning."""
        stale, self.stale = self.stale, []
        users_of: dict[str, set[int]] = defaultdict(set)
        for user_id, gateway in stale:
            users_of[gateway].add(user_id)
        try:
            if users_of:
                now_ms = int(time.time() * 1000)
                beats = await self.client.zmscore(self.keys.gateways(), list(users_of))
                for (gateway, users), beat in zip(users_of.items(), beats, strict=True):
                    if beat is not None and beat >= now_ms - LIVE_MS:
                        continue  # it heartbeats again: its entries are right
                    self.unmark.add(gateway)  # before any of its entries goes
                    for user_id in users:
                        shard = shard_of(user_id, self.shards)
                        await self.unregister(
                            keys=[self.keys.where(shard), counts_key(self.keys, shard)],
                            args=[user_id, gateway],
                        )
        finally:
            for gateway in list(self.unmark):
                await self.client.delete(self.keys.mark(gateway))
                self.unmark.discard(gateway)
        now_ms = int(time.time() * 1000)
        dead = await self.client.zrangebyscore(self.keys.gateways(), 0, now_ms - LIVE_MS)
        for raw in dead:
            gateway = text(raw)
            # Without its mark a gateway that comes back registers again and catches up.
            await self.client.delete(self.keys.mark(gateway), self.keys.inbox(gateway))
            await self.client.zrem(self.keys.gateways(), gateway)


def online_anywhere(user_ids: Collection[int]) -> set[int]:
    """From synchronous code: which users a live gateway holds."""
    keys = Keys()
    grouped = by_shard(user_ids, settings.FANOUT_USER_SHARDS)
    if not grouped:
        return set()
    client = sync_client()
    now_ms = int(time.time() * 1000)
    live = {
        text(g) for g in cast(Any, client.zrangebyscore(keys.gateways(), now_ms - LIVE_MS, "+inf"))
    }
    pipe = client.pipeline(transaction=False)
    for shard, users in grouped.items():
        pipe.hmget(keys.where(shard), users)
        pipe.hmget(gone_key(keys, shard), users)
    answers = pipe.execute()
    found: set[int] = set()
    grace = settings.PRESENCE_GRACE_S
    for index, users in enumerate(grouped.values()):
        held, gone = answers[2 * index], answers[2 * index + 1]
        for user_id, where, token in zip(users, held, gone, strict=True):
            # A user whose offline is pending (closed within the grace) still counts.
            if (where and live.intersection(where.decode().split())) or pending_online(
                token, now_ms, grace
            ):
                found.add(user_id)
    return found
