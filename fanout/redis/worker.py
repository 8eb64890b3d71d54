"""The partition worker of the scaled mode (``python manage.py fanout_worker``).

``fanout_worker`` processes share the partitions: each partition has one live holder through a
lease (``SET NX PX``, renewed by its holder, released on SIGTERM); a worker's heartbeat, its
renewals and its acquisitions are one script call per round (``scripts.ROUND``). The holder
reads the partition's stream through a consumer group and routes a whole read at once (one
registry look-up, one hand-off), then acknowledges it and records the seqs it routed in one
call (``scripts.ROUTED``, what the sweep compares the rooms' heads with). When the whole read
cannot be handed over, its items are routed one by one, with retries. A new holder first claims
what the previous one left pending (``XAUTOCLAIM``), so a worker that dies loses nothing: its
partitions move within the lease TTL plus one acquisition round. An entry that fails
``FANOUT_MAX_TRIES`` deliveries goes to the partition's dead-letter stream and the partition
flows on. Redis 7.0 commands only (docs/fanout.md).
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
from fanout.items import Item, Malformed, RoomItem, decode_item
from fanout.loops import raise_if_cancelled
from fanout.redis.keys import BLOCK_MS, GROUP, Keys, async_client, text
from fanout.redis.publisher import RedisHandoff
from fanout.redis.registry import RedisRegistry
from fanout.redis.scripts import RELEASE, ROUND, ROUTED
from fanout.redis.sweep import sweep
from fanout.router import Reach, Router

logger = logging.getLogger(__name__)

READ_COUNT = 200
CLAIM_COUNT = 200
# The registry's cleaning, by the holder of partition 0 (a dead gateway is skipped by every
# look-up anyway: this only frees its entries).
CLEAN_EVERY_S = 15.0
SWEEP_RETRY_S = 5.0  # a sweep that failed is tried again after this
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
        # XREADGROUP BLOCK holds a connection per partition, with a longer socket timeout.
        self.blocking = async_client(blocking=True)
        self.registry = RedisRegistry(self.client, self.keys)
        self.router = Router(
            self.registry, RedisHandoff(self.client, self.keys), worker_reach(self.client)
        )
        self.round = self.client.register_script(ROUND)
        self.release = self.client.register_script(RELEASE)
        self.ack_routed = self.client.register_script(ROUTED)
        self.held: dict[int, asyncio.Task[None]] = {}
        self.logged_held: list[int] | None = None  # the holding last logged
        # Until when each held lease is known valid: from just before the command that set or
        # renewed it, so never later than Redis lets it expire.
        self.lease_until: dict[int, float] = {}
        self.given_back: dict[int, float] = {}
        # Entries this process has read or claimed and not yet acknowledged: their delivery
        # count in Redis grows with this worker's own retries, which are not deaths.
        self.seen: set[Any] = set()
        self.housekeeping: asyncio.Task[None] | None = None
        self.stopping = asyncio.Event()
        self.sweep_every = settings.FANOUT_SWEEP_EVERY_S
        self.sweep_due = True  # a new holder of partition 0 sweeps at once
        self.sweep_not_before = 0.0
        self.last_sweep = 0.0
        self.last_clean = 0.0
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
        """Heartbeat, renew, take: one script call (``scripts.ROUND``). A partition whose lease
        was lost stops at once; one whose task ended is released and taken up again."""
        ended = [p for p, task in self.held.items() if task.done()]
        running = [p for p in self.held if p not in ended]
        now = time.monotonic()
        given_back = [p for p, until in self.given_back.items() if until > now]
        to_try = [p for p in range(self.partitions) if p not in running]
        asked = time.monotonic()
        answer = await self.round(
            keys=[
                self.keys.workers(),
                self.keys.sweep_due(),
                *(self.keys.lease(p) for p in range(self.partitions)),
            ],
            args=[
                self.id,
                int(time.time() * 1000),
                self.lease_ms,
                ",".join(map(str, running)),
                ",".join(map(str, ended)),
                ",".join(map(str, to_try)),
                ",".join(map(str, given_back)),
            ],
        )
        renewed, taken, alive, flag = cast(list[Any], answer)
        renewed, taken = {int(p) for p in renewed}, [int(p) for p in taken]
        valid_until = asked + self.lease_ms / 1000
        for partition in ended:
            await self._drop(partition, release=False)  # released by the script
        for partition in running:
            if partition in renewed:
                self.lease_until[partition] = valid_until
            else:
                await self._drop(partition, release=False)
        if flag:
            self.sweep_due = True
        # Give back one partition per round above the fair share, so that a new worker gets
        # its part without a storm of moves; it is not taken back here for a few rounds.
        share = math.ceil(self.partitions / max(1, int(alive)))
        if len(self.held) > share:
            given = max(self.held)
            await self._drop(given, release=True)
            self.given_back[given] = time.monotonic() + GIVE_BACK_S
        for partition in taken:
            self.lease_until[partition] = valid_until
            self.router.forget(partition, self.partitions)
            self.held[partition] = asyncio.create_task(self._work(partition))
        metrics.PARTITIONS_HELD.set(len(self.held))
        self._log_holding()
        # The sweep and the registry's cleaning read the database and Redis at length: they
        # run beside the lease loop, never in its way (a late renewal would lose the leases).
        busy = self.housekeeping is not None and not self.housekeeping.done()
        if 0 not in self.held or busy:
            return
        now = time.monotonic()
        sweep_now = now >= self.sweep_not_before and (
            self.sweep_due or now - self.last_sweep >= self.sweep_every
        )
        clean_now = (
            now - self.last_clean >= CLEAN_EVERY_S
            or bool(self.registry.stale)
            or bool(self.registry.unmark)
        )
        if sweep_now or clean_now:
            self.housekeeping = asyncio.create_task(self._housekeep(sweep_now))

    def _log_holding(self) -> None:
        """One line when the partitions this worker holds change: "holding 4 of 8 partitions:
        0,2,5,7"."""
        held = sorted(self.held)
        if held == self.logged_held:
            return
        self.logged_held = held
        logger.info("fan-out worker %s: holding %d of %d partitions: %s", self.id, len(held),
                    self.partitions, ",".join(map(str, held)) or "none")  # fmt: skip

    async def _housekeep(self, sweep_now: bool) -> None:
        if sweep_now:
            self.sweep_due = False
            self.last_sweep = time.monotonic()
            try:
                # More to do runs it again at the next round (as does a flag read meanwhile).
                if await sweep(self.client, self.keys, self.partitions):
                    self.sweep_due = True
            except asyncio.CancelledError:
                raise
            except Exception:
                raise_if_cancelled()
                logger.warning("fan-out worker: the sweep failed; retrying", exc_info=True)
                self.sweep_due = True
                self.sweep_not_before = time.monotonic() + SWEEP_RETRY_S
        try:
            self.last_clean = time.monotonic()
            await self.registry.clean()
            await self._forget_consumers()
        except asyncio.CancelledError:
            raise
        except Exception:
            raise_if_cancelled()
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
        """Route a read's entries in order, then acknowledge them and record the seqs routed
        in one call. ``fresh``: claimed entries that other holders had; one delivered more
        than ``max_tries`` times kept killing its holders."""
        if not self._holds(partition):
            return  # the lease moved on: the read stays pending for the new holder
        fresh = fresh or set()
        tries: dict[Any, int] = {}
        if fresh:
            ids = [entry_id for entry_id, _ in entries]
            details = await self.client.xpending_range(
                stream, GROUP, min=ids[0], max=ids[-1], count=len(ids) + 10
            )
            tries = {d["message_id"]: int(d["times_delivered"]) for d in details}
        done: list[Any] = []
        routable: list[tuple[Any, Any, Item]] = []
        for entry_id, fields in entries:
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
            routable.append((entry_id, fields, item))
        handled = await self._route_read(partition, routable)
        done.extend(entry_id for entry_id, _, _ in handled)
        routed: dict[int, int] = {}
        for _, _, item in handled:
            if isinstance(item, RoomItem) and item.seq > routed.get(item.room_id, 0):
                routed[item.room_id] = item.seq
        if done:
            await self._ack(partition, stream, done, routed)

    async def _route_read(
        self, partition: int, routable: list[tuple[Any, Any, Item]]
    ) -> list[tuple[Any, Any, Item]]:
        """Hand the read over, all at once, else item by item; returns the entries done with
        (handed over or dead-lettered), in order, up to where the lease was lost."""
        if not routable:
            return []
        try:
            sent = await self.router.handle_many(
                [item for _, _, item in routable], may_send=lambda: self._holds(partition)
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise_if_cancelled()
            logger.warning("fan-out partition %s: the read's hand-off failed (%s); item by item",
                           partition, type(exc).__name__)  # fmt: skip
        else:
            if not sent:
                return []  # the lease is not known valid: the read stays pending
            self._failpoint(len(routable))
            return routable
        handled: list[tuple[Any, Any, Item]] = []
        for entry in routable:
            if not self._holds(partition):
                break  # the lease moved on: the rest stays pending for the new holder
            entry_id, fields, item = entry
            if not await self._route(partition, item):
                await self._dead_letter(partition, entry_id, fields, "failed")
            self._failpoint(1)
            handled.append(entry)
        return handled

    async def _ack(
        self, partition: int, stream: str, done: list[Any], routed: dict[int, int]
    ) -> None:
        """Acknowledge the entries and raise the rooms' routed seqs: one script call."""
        pairs = [value for room_seq in routed.items() for value in room_seq]
        await self.ack_routed(
            keys=[stream, self.keys.routed(partition)], args=[GROUP, len(done), *done, *pairs]
        )
        self.seen.difference_update(done)

    def _remember(self, entries: list[Any]) -> None:
        if len(self.seen) > SEEN_MAX:
            self.seen.clear()  # a bound: forgetting only makes a retry count as a death
        self.seen.update(entry_id for entry_id, _ in entries)

    def _failpoint(self, handed: int) -> None:
        """``SPHERE_FANOUT_CRASH_AFTER=N``: die once N items were handed over, before their
        acknowledgement (for the crash tests; unset in any deployment)."""
        if self.crash_after:
            self.handled += handed
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
