"""The partition worker of the scaled mode (``python manage.py fanout_worker``).

``fanout_worker`` processes share the partitions: each partition has one live holder through a
lease (``SET NX PX``, renewed by its holder, released on SIGTERM); the holder reads the
partition's stream through a consumer group, runs the router and acknowledges each entry after
its hand-off. A new holder first claims what the previous one left pending (``XAUTOCLAIM``), so
a worker that dies loses nothing: its partitions move within the lease TTL plus one acquisition
round. An entry that fails ``FANOUT_MAX_TRIES`` deliveries goes to the partition's dead-letter
stream and the partition flows on. Redis 7.0 commands only (docs/fanout.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import secrets
import time
from collections.abc import Collection, Sequence
from typing import Any, cast

import redis.asyncio as aioredis
from django.conf import settings
from django.db import DatabaseError, DataError, IntegrityError, ProgrammingError
from redis.exceptions import RedisError, ResponseError

from fanout import metrics
from fanout.hooks import hooks
from fanout.items import Item, Malformed, decode_item
from fanout.loops import raise_if_cancelled
from fanout.redis.keys import BLOCK_MS, GROUP, Keys, async_client, text
from fanout.redis.publisher import RedisHandoff
from fanout.redis.registry import RedisRegistry
from fanout.redis.scripts import RELEASE, RENEW
from fanout.redis.sweep import sweep
from fanout.router import Reach, Router

logger = logging.getLogger(__name__)

READ_COUNT = 200
CLAIM_COUNT = 200
SWEEP_EVERY_S = 1.0
GIVE_BACK_S = 3.0  # a partition given back is left to others this long
DROP_WAIT_S = 2.0  # how long a dropped partition's task is waited for
SEEN_MAX = 100_000
FORGET_EVERY_S = 60.0
FORGET_IDLE_MS = 10 * 60 * 1000


def worker_reach(client: aioredis.Redis) -> Reach:
    """Link reach counted on the worker's own Redis client."""
    links = hooks.links

    async def count(
        *,
        community_id: int,
        urls: Sequence[str],
        reader_ids: Collection[int],
        message: tuple[int, int],
    ) -> None:
        await links.record(
            community_id=community_id,
            urls=urls,
            reader_ids=reader_ids,
            message=message,
            client=client,
        )

    return count


class Worker:
    """One ``fanout_worker`` process: holds a fair share of the partitions' leases and works
    each held partition in its own task."""

    def __init__(self, *, worker_id: str | None = None, partitions: int | None = None) -> None:
        self.id = worker_id or f"{os.uname().nodename}-{os.getpid()}-{secrets.token_hex(3)}"
        self.partitions = partitions or settings.FANOUT_PARTITIONS
        self.keys = Keys()
        self.lease_ms = settings.FANOUT_LEASE_MS
        self.max_tries = settings.FANOUT_MAX_TRIES
        self.client = async_client()
        self.blocking = async_client()  # XREADGROUP BLOCK holds a connection per partition
        self.registry = RedisRegistry(self.client, self.keys)
        self.router = Router(
            self.registry, RedisHandoff(self.client, self.keys), worker_reach(self.client)
        )
        self.renew = self.client.register_script(RENEW)
        self.release = self.client.register_script(RELEASE)
        self.held: dict[int, asyncio.Task[None]] = {}
        # Until when each held lease is known valid: from just before the command that set or
        # renewed it, so never later than Redis lets it expire.
        self.lease_until: dict[int, float] = {}
        self.given_back: dict[int, float] = {}
        # Entries this process has read or claimed and not yet acknowledged: their delivery
        # count in Redis grows with this worker's own retries, which are not deaths.
        self.seen: set[Any] = set()
        self.housekeeping: asyncio.Task[None] | None = None
        self.stopping = asyncio.Event()
        self.last_sweep = 0.0
        self.last_forget = 0.0
        self.crash_after = int(os.environ.get("SPHERE_FANOUT_CRASH_AFTER", "0") or 0)
        self.handled = 0

    async def run(self) -> None:
        logger.info("fan-out worker %s starting on %s partitions", self.id, self.partitions)
        try:
            while not self.stopping.is_set():
                try:
                    await self._round()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    raise_if_cancelled()
                    logger.warning("fan-out worker: lease round failed; retrying", exc_info=True)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), timeout=self._period())
        finally:
            await self._shutdown()

    def _period(self) -> float:
        return max(0.1, self.lease_ms / 5000)

    def stop(self) -> None:
        self.stopping.set()

    async def _round(self) -> None:
        now_ms = int(time.time() * 1000)
        await self.client.zadd(self.keys.workers(), {self.id: now_ms})
        await self.client.zremrangebyscore(self.keys.workers(), 0, now_ms - 20 * self.lease_ms)
        # A worker silent for a lease TTL is gone (it heartbeats every TTL / 5).
        alive = await self.client.zcount(self.keys.workers(), now_ms - self.lease_ms, "+inf")
        share = math.ceil(self.partitions / max(1, alive))
        # Renew what is held; a partition whose lease was lost stops at once.
        for partition, task in list(self.held.items()):
            asked = time.monotonic()
            renewed = await self.renew(
                keys=[self.keys.lease(partition)], args=[self.id, self.lease_ms]
            )
            if renewed:
                self.lease_until[partition] = asked + self.lease_ms / 1000
            if not renewed or task.done():
                await self._drop(partition, release=bool(renewed))
        # Give back one partition per round above the fair share, so that a new worker gets
        # its part without a storm of moves; it is not taken back here for a few rounds.
        if len(self.held) > share:
            given = max(self.held)
            await self._drop(given, release=True)
            self.given_back[given] = time.monotonic() + GIVE_BACK_S
        for partition in range(self.partitions):
            if partition in self.held:
                continue
            # Up to the fair share any free partition; above it only an orphan (its holder
            # died), so that no partition waits for the others to notice a dead worker.
            if len(self.held) >= share and self.given_back.get(partition, 0.0) > time.monotonic():
                continue
            asked = time.monotonic()
            got = await self.client.set(
                self.keys.lease(partition), self.id, nx=True, px=self.lease_ms
            )
            if got:
                self.lease_until[partition] = asked + self.lease_ms / 1000
                self.router.forget(partition, self.partitions)
                self.held[partition] = asyncio.create_task(self._work(partition))
        metrics.PARTITIONS_HELD.set(len(self.held))
        # The sweep and the registry's cleaning read the database and Redis at length: they
        # run beside the lease loop, never in its way (a late renewal would lose the leases).
        busy = self.housekeeping is not None and not self.housekeeping.done()
        if 0 in self.held and not busy and time.monotonic() - self.last_sweep > SWEEP_EVERY_S:
            self.last_sweep = time.monotonic()
            self.housekeeping = asyncio.create_task(self._housekeep())

    async def _housekeep(self) -> None:
        try:
            await sweep(self.client, self.keys, self.partitions)
            await self.registry.clean()
            await self._forget_consumers()
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.warning("fan-out worker: housekeeping failed; retrying", exc_info=True)

    async def _forget_consumers(self) -> None:
        """Remove from the consumer groups the consumers of workers long gone that hold
        nothing pending (every worker process reads under a name of its own)."""
        if time.monotonic() - self.last_forget < FORGET_EVERY_S:
            return
        self.last_forget = time.monotonic()
        for partition in range(self.partitions):
            stream = self.keys.stream(partition)
            try:
                consumers = await self.client.xinfo_consumers(stream, GROUP)
            except ResponseError:
                continue  # no stream or group yet
            for consumer in consumers:
                name = text(consumer["name"])
                if (
                    name != self.id
                    and int(consumer["pending"]) == 0
                    and int(consumer["idle"]) > FORGET_IDLE_MS
                ):
                    await self.client.xgroup_delconsumer(stream, GROUP, name)

    async def _drop(self, partition: int, *, release: bool) -> None:
        """Stop the partition's task and (if still ours) release its lease. A task stuck in a
        blocking read is not waited for beyond a bound: it no longer holds the partition, so
        it hands nothing over and ends when its read returns."""
        task = self.held.pop(partition)
        self.lease_until.pop(partition, None)
        task.cancel()
        await asyncio.wait({task}, timeout=DROP_WAIT_S)
        if release:
            await self.release(keys=[self.keys.lease(partition)], args=[self.id])

    def _holds(self, partition: int) -> bool:
        """This task still works the partition and its lease is known valid: a worker whose
        renewals came late stops handing over before another holder can start."""
        return self.held.get(
            partition
        ) is asyncio.current_task() and time.monotonic() < self.lease_until.get(partition, 0.0)

    async def _shutdown(self) -> None:
        if self.housekeeping is not None:
            self.housekeeping.cancel()
        for partition in list(self.held):
            try:
                await self._drop(partition, release=True)
            except Exception:
                logger.warning("fan-out worker: releasing partition %s failed", partition)
        with contextlib.suppress(Exception):  # Redis may be gone at shutdown
            await self.client.zrem(self.keys.workers(), self.id)
        await self.client.aclose()
        await self.blocking.aclose()
        logger.info("fan-out worker %s stopped", self.id)

    # --- one partition -----------------------------------------------------------------------

    async def _work(self, partition: int) -> None:
        stream = self.keys.stream(partition)
        await asyncio.sleep(0)  # registered in ``held`` before the first check
        while self._holds(partition):
            try:
                await self._ensure_group(stream)
                await self._take_over(partition, stream)
                while self._holds(partition):
                    answer = await self.blocking.xreadgroup(
                        GROUP, self.id, {stream: ">"}, count=READ_COUNT, block=BLOCK_MS
                    )
                    for _stream, entries in cast(Any, answer) or ():
                        self._remember(entries)
                        await self._handle_entries(partition, stream, entries)
            except asyncio.CancelledError:
                raise
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    logger.warning("fan-out partition %s: %s", partition, exc)
                await asyncio.sleep(0.2)  # Redis lost the stream (a restart): start over
            except Exception:
                raise_if_cancelled()
                logger.warning("fan-out partition %s: read failed; retrying", partition)
                await asyncio.sleep(0.5)

    async def _ensure_group(self, stream: str) -> None:
        try:
            await self.client.xgroup_create(stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _take_over(self, partition: int, stream: str) -> None:
        """Claim what earlier holders left pending and handle it first, in stream order."""
        start = "0-0"
        while self._holds(partition):
            answer = await self.client.xautoclaim(
                stream, GROUP, self.id, min_idle_time=0, start_id=start, count=CLAIM_COUNT
            )
            start, entries = answer[0], answer[1]
            if entries:
                # What this process never had was left by a holder that died with it.
                fresh = {entry_id for entry_id, _ in entries if entry_id not in self.seen}
                metrics.REDELIVERIES.inc(len(fresh))
                self._remember(entries)
                await self._handle_entries(partition, stream, entries, fresh=fresh)
            if start in (b"0-0", "0-0"):
                return

    async def _handle_entries(
        self, partition: int, stream: str, entries: list[Any], *, fresh: set[Any] | None = None
    ) -> None:
        """Route and acknowledge entries in order. ``fresh``: claimed entries that other
        holders had; one delivered more than ``max_tries`` times kept killing its holders."""
        fresh = fresh or set()
        tries: dict[Any, int] = {}
        if fresh:
            ids = [entry_id for entry_id, _ in entries]
            details = await self.client.xpending_range(
                stream, GROUP, min=ids[0], max=ids[-1], count=len(ids) + 10
            )
            tries = {d["message_id"]: int(d["times_delivered"]) for d in details}
        done: list[Any] = []
        for entry_id, fields in entries:
            if not self._holds(partition):
                break  # the lease moved on: the rest stays pending for the new holder
            if fields is None:  # deleted while pending
                done.append(entry_id)
                continue
            if entry_id in fresh and tries.get(entry_id, 1) > self.max_tries:
                await self._dead_letter(partition, entry_id, fields, "too many deliveries")
                done.append(entry_id)
                continue
            try:
                item = decode_item(fields[b"i"])
            except (Malformed, KeyError):
                await self._dead_letter(partition, entry_id, fields, "malformed")
                done.append(entry_id)
                continue
            if not await self._route(partition, item):
                await self._dead_letter(partition, entry_id, fields, "failed")
            self._failpoint()
            done.append(entry_id)
            if len(done) >= 50:
                await self._ack(stream, done)
                done = []
        if done:
            await self._ack(stream, done)

    async def _ack(self, stream: str, done: list[Any]) -> None:
        await self.client.xack(stream, GROUP, *done)
        self.seen.difference_update(done)

    def _remember(self, entries: list[Any]) -> None:
        if len(self.seen) > SEEN_MAX:
            self.seen.clear()  # a bound: forgetting only makes a retry count as a death
        self.seen.update(entry_id for entry_id, _ in entries)

    def _failpoint(self) -> None:
        """``SPHERE_FANOUT_CRASH_AFTER=N``: die after the Nth hand-off and before its
        acknowledgement (for the crash tests; unset in any deployment)."""
        if self.crash_after:
            self.handled += 1
            if self.handled >= self.crash_after:
                logger.error("fan-out worker %s: crashing on purpose (failpoint)", self.id)
                os._exit(70)

    async def _route(self, partition: int, item: Item) -> bool:
        """Hand the item on; False when it keeps failing for a reason of its own (it then
        goes to the dead letters). An outage of Redis or the database is waited out instead,
        in order; the entry stays pending meanwhile, so a worker that dies here leaves it to
        the next holder."""
        delay = 0.05
        failures = 0
        while True:
            try:
                await self.router.handle(item)
                return True
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, DatabaseError) as exc:
                raise_if_cancelled()
                if isinstance(exc, DataError | IntegrityError | ProgrammingError):
                    failures += 1
                logger.warning("fan-out partition %s: hand-off failed (%s); retrying", partition,
                               type(exc).__name__)  # fmt: skip
            except Exception:
                raise_if_cancelled()
                failures += 1
                logger.exception("fan-out partition %s: item failed", partition)
            if failures >= self.max_tries:
                return False
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def _dead_letter(self, partition: int, entry_id: Any, fields: Any, why: str) -> None:
        record = {b"id": entry_id, b"why": why.encode()}
        if fields:
            record.update(
                {k if isinstance(k, bytes) else str(k).encode(): v for k, v in fields.items()}
            )
        await self.client.xadd(
            self.keys.dead(partition), cast(Any, record), maxlen=10_000, approximate=True
        )
        metrics.DEAD_LETTERS.inc()
        logger.error("fan-out partition %s: entry %s moved to dead letters (%s)", partition,
                     entry_id, why)  # fmt: skip
