"""The gateway side of the tier: this process's connections, and the batches written to them.

Every server process that accepts WebSockets has one ``Gateway`` per event loop. It keeps which
local connections each user has and applies batches to them; a batch names users, and each of
their connections keeps the room's order and drops what it already has (``fanout.delivery``).

Embedded mode: the partitions run in this process (``fanout.hub``) and hand batches straight to
``apply``. Scaled mode: the gateway registers its users in Redis before their ``hello`` (so a
partition that handles an event after the connection opened finds it), reads its inbox stream,
and heartbeats; when Redis lost the registry (a restart) it registers again and lets every
connection catch up from the database, so nothing missed in between stays missing.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable
from typing import Any, cast

import redis.asyncio as aioredis
from django.conf import settings
from redis.exceptions import RedisError

from fanout import metrics
from fanout.interfaces import Connection
from fanout.items import AccessBatch, Batch, EventBatch, Malformed, UsersBatch, unpack
from fanout.loops import raise_if_cancelled
from fanout.store import BLOCK_MS, Keys, async_client, sync_client
from fanout.store import text as _text

logger = logging.getLogger(__name__)
LIVE = metrics.DELIVERIES.labels("live")

HEARTBEAT_S = 2.0
MARK_TTL_S = 60
RECOVER_AGAIN_S = (3.0, 8.0)
# A gateway whose heartbeat is older than this is taken for dead.
LIVE_MS = 15_000
INBOX_COUNT = 500

# KEYS[1]: a user shard's hash; ARGV: user id, gateway id. Returns how many other gateways
# held the user before.
REGISTER = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) return 0 end
local n = 0
for g in string.gmatch(cur, '%S+') do
  if g == ARGV[2] then return n end
  n = n + 1
end
redis.call('HSET', KEYS[1], ARGV[1], cur .. ' ' .. ARGV[2])
return n
"""

# The reverse; returns how many gateways still hold the user.
UNREGISTER = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return 0 end
local out = {}
for g in string.gmatch(cur, '%S+') do
  if g ~= ARGV[2] then table.insert(out, g) end
end
if #out == 0 then redis.call('HDEL', KEYS[1], ARGV[1]) return 0 end
redis.call('HSET', KEYS[1], ARGV[1], table.concat(out, ' '))
return #out
"""


def shard_of(user_id: int, shards: int) -> int:
    return user_id % shards


class Gateway:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.id = secrets.token_hex(6)
        self.connections: dict[int, set[Connection]] = defaultdict(set)
        # Registering and unregistering a user are awaited; one user's run one at a time, so
        # a socket closing while another opens never leaves the user unregistered.
        self.user_locks: dict[int, asyncio.Lock] = {}
        self.registered: set[int] = set()
        self.link: RedisLink | None = None
        if settings.SCALED:
            self.link = RedisLink(self)

    # --- connections ------------------------------------------------------------------------

    async def attach(self, connection: Connection) -> bool:
        """Register a connection; True when its user had no other connection anywhere."""
        user_id = connection.user_id
        conns = self.connections[user_id]
        first_here = not conns
        conns.add(connection)
        metrics.CONNECTIONS.inc()
        if self.link is None:
            return first_here
        async with self._lock(user_id):
            if user_id in self.registered:
                return False
            try:
                elsewhere = await self.link.register(user_id)
            except BaseException:
                await self.detach_local(connection)
                raise
            self.registered.add(user_id)
        return elsewhere == 0

    async def detach_local(self, connection: Connection) -> None:
        conns = self.connections.get(connection.user_id)
        if conns is not None and connection in conns:
            conns.discard(connection)
            metrics.CONNECTIONS.dec()
            if not conns:
                del self.connections[connection.user_id]

    async def detach(self, connection: Connection) -> bool:
        """Forget a connection; True when its user has no connection left anywhere."""
        user_id = connection.user_id
        conns = self.connections.get(user_id)
        if conns is None or connection not in conns:
            return False
        conns.discard(connection)
        metrics.CONNECTIONS.dec()
        if conns:
            return False
        del self.connections[user_id]
        if self.link is None:
            return True
        # Shielded: a cancelled caller must not leave the user registered here.
        return await asyncio.shield(self._unregister(user_id))

    async def _unregister(self, user_id: int) -> bool:
        link = self.link
        assert link is not None
        async with self._lock(user_id):
            if user_id in self.connections or user_id not in self.registered:
                return False  # a new socket of the user opened meanwhile: it stays
            self.registered.discard(user_id)
            left = await link.unregister(user_id)
        lock = self.user_locks.get(user_id)
        if lock is not None and not lock.locked() and not getattr(lock, "_waiters", None):
            del self.user_locks[user_id]  # nobody waits on it: a later socket makes another
        return left == 0

    def _lock(self, user_id: int) -> asyncio.Lock:
        lock = self.user_locks.get(user_id)
        if lock is None:
            lock = self.user_locks[user_id] = asyncio.Lock()
        return lock

    def connections_of(self, user_id: int) -> tuple[Connection, ...]:
        return tuple(self.connections.get(user_id, ()))

    async def online(self, user_ids: Collection[int]) -> set[int]:
        """Which of these users have a connection in any gateway."""
        if self.link is None:
            return {u for u in user_ids if u in self.connections}
        return await self.link.online(user_ids)

    # --- the tier's side: registry and hand-off of the embedded mode --------------------------

    async def locate(self, user_ids: Collection[int]) -> dict[str, list[int]]:
        connected = self.connections
        if len(user_ids) <= len(connected):
            here = [u for u in user_ids if u in connected]
        else:
            here = [u for u in list(connected) if u in user_ids]
        return {self.id: here} if here else {}

    async def send(self, batches: Iterable[tuple[str, Batch]]) -> None:
        for _, batch in batches:
            self.apply(batch)

    def apply(self, batch: Batch) -> None:
        if isinstance(batch, EventBatch):
            if batch.seq:
                self._deliver(batch)
                return
            for user_id in batch.user_ids:
                for connection in self.connections_of(user_id):
                    _safely(connection.deliver_frame, batch.frame)
        elif isinstance(batch, AccessBatch):
            for user_id, frame in zip(batch.user_ids, batch.frames, strict=True):
                for connection in self.connections_of(user_id):
                    if batch.grant:
                        _safely(
                            connection.grant_room,
                            batch.room_id,
                            batch.head_seq,
                            frame,
                            batch.version,
                        )
                    else:
                        _safely(connection.revoke_room, batch.room_id, frame, batch.version)
        elif isinstance(batch, UsersBatch):
            for user_id in batch.user_ids:
                for connection in self.connections_of(user_id):
                    _safely(connection.deliver_frame, batch.frame)

    def _deliver(self, batch: EventBatch) -> None:
        """The hot path: one room event to every local connection of the listed users. A
        connection's failure is logged and never keeps the event from the others."""
        if batch.sent:
            metrics.LATENCY.observe(max(0.0, time.time() - batch.sent))
        room_id, seq, frame = batch.room_id, batch.seq, batch.frame
        connections = self.connections
        written = 0
        for user_id in batch.user_ids:
            conns = connections.get(user_id)
            if not conns:
                continue
            # A socket closing meanwhile leaves the set on a later loop turn, never during
            # this loop; a copy is made only where the user has several sockets here.
            for connection in conns if len(conns) == 1 else tuple(conns):
                try:
                    written += connection.deliver_event(room_id, seq, frame)
                except Exception:
                    logger.exception("fan-out: hand-off to a connection failed")
        if written:
            LIVE.inc(written)

    def recover(self) -> None:
        """Every connection fetches from the database what it may have missed."""
        for conns in list(self.connections.values()):
            for connection in list(conns):
                _safely(connection.recover)

    def stop(self) -> None:
        if self.link is not None:
            self.link.stop()


def _safely(hand_off: Callable[..., None], *args: Any) -> None:
    """One connection's failure never keeps a batch from the others."""
    try:
        hand_off(*args)
    except Exception:
        logger.exception("fan-out: hand-off to a connection failed")


class RedisLink:
    """A gateway's presence in Redis: registry entries, inbox reader and heartbeat."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.keys = Keys()
        self.client: aioredis.Redis = async_client()
        self.reader: aioredis.Redis = async_client()  # blocking reads get their own pool
        self.shards = settings.FANOUT_USER_SHARDS
        self.register_script = self.client.register_script(REGISTER)
        self.unregister_script = self.client.register_script(UNREGISTER)
        self.last_id = "0-0"
        self.ready = asyncio.Event()  # in the gateways set: workers send to it
        self.tasks = [
            gateway.loop.create_task(self._inbox()),
            gateway.loop.create_task(self._heartbeat()),
        ]

    async def register(self, user_id: int) -> int:
        await asyncio.wait_for(self.ready.wait(), timeout=10)
        key = self.keys.where(shard_of(user_id, self.shards))
        for attempt in range(5):
            try:
                return int(await self.register_script(keys=[key], args=[user_id, self.gateway.id]))
            except RedisError:
                if attempt == 4:
                    raise
                await asyncio.sleep(0.1 * (attempt + 1))
        return 0

    async def unregister(self, user_id: int) -> int:
        key = self.keys.where(shard_of(user_id, self.shards))
        try:
            return int(await self.unregister_script(keys=[key], args=[user_id, self.gateway.id]))
        except RedisError:
            # The heartbeat stops; workers skip a dead gateway and clean its entries.
            logger.warning("fan-out: could not unregister a user from the registry")
            return 0

    async def online(self, user_ids: Collection[int]) -> set[int]:
        by_shard: dict[int, list[int]] = defaultdict(list)
        for user_id in user_ids:
            by_shard[shard_of(user_id, self.shards)].append(user_id)
        async with self.client.pipeline(transaction=False) as pipe:
            for shard, users in by_shard.items():
                pipe.hmget(self.keys.where(shard), users)
            answers = await pipe.execute()
        found: set[int] = set()
        for users, values in zip(by_shard.values(), answers, strict=True):
            found.update(u for u, v in zip(users, values, strict=True) if v)
        return found

    async def _inbox(self) -> None:
        key = self.keys.inbox(self.gateway.id)
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
                        batch = unpack(fields[b"b"])
                    except (Malformed, KeyError):
                        metrics.DROPS.labels("malformed_batch").inc()
                        logger.error("fan-out: malformed batch in gateway inbox skipped")
                        continue
                    if isinstance(batch, EventBatch | AccessBatch | UsersBatch):
                        self.gateway.apply(batch)

    async def _heartbeat(self) -> None:
        mark = self.keys.mark(self.gateway.id)
        started = False
        while True:
            try:
                now_ms = int(time.time() * 1000)
                await self.client.zadd(self.keys.gateways(), {self.gateway.id: now_ms})
                self.ready.set()
                if not await self.client.exists(mark):
                    await self._reregister(lost=started)
                await self.client.set(mark, "1", ex=MARK_TTL_S)
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
        gateway = self.gateway
        for user_id in list(gateway.connections):
            async with gateway._lock(user_id):
                if user_id in gateway.connections:
                    await self.register(user_id)
                    gateway.registered.add(user_id)
        if lost:
            logger.warning("fan-out: the registry was lost (Redis restarted?); recovering")
            self.gateway.recover()
            # Events routed between Redis coming back and this registration found nobody
            # here; they are in the database by now or soon: look again after a while.
            for delay in RECOVER_AGAIN_S:
                self.gateway.loop.call_later(delay, self.gateway.recover)

    def stop(self) -> None:
        if self.gateway.loop.is_closed():
            return
        for task in self.tasks:
            task.cancel()


def online_anywhere(user_ids: Collection[int]) -> set[int]:
    """Scaled mode, from synchronous code: which users a live gateway holds."""
    keys = Keys()
    shards = settings.FANOUT_USER_SHARDS
    by_shard: dict[int, list[int]] = defaultdict(list)
    for user_id in user_ids:
        by_shard[shard_of(user_id, shards)].append(user_id)
    if not by_shard:
        return set()
    client = sync_client()
    now_ms = int(time.time() * 1000)
    live = {
        _text(g) for g in cast(Any, client.zrangebyscore(keys.gateways(), now_ms - LIVE_MS, "+inf"))
    }
    pipe = client.pipeline(transaction=False)
    for shard, users in by_shard.items():
        pipe.hmget(keys.where(shard), users)
    found: set[int] = set()
    for users, values in zip(by_shard.values(), pipe.execute(), strict=True):
        for user_id, value in zip(users, values, strict=True):
            if value and live.intersection(value.decode().split()):
                found.add(user_id)
    return found


_gateway: Gateway | None = None
_lock = threading.Lock()


def gateway_for_running_loop() -> Gateway:
    """The gateway of the event loop this server runs in, started on first use."""
    global _gateway
    loop = asyncio.get_running_loop()
    with _lock:
        if _gateway is None or _gateway.loop is not loop:
            if _gateway is not None:
                _gateway.stop()
            _gateway = Gateway(loop)
        return _gateway


def current_gateway() -> Gateway | None:
    gateway = _gateway
    if gateway is None or gateway.loop.is_closed():
        return None
    return gateway
