"""Prometheus metrics of the fan-out tier (served at ``/metrics`` by gateways and by
``fanout_worker --metrics-port``)."""

from __future__ import annotations

import asyncio
import heapq
import threading
import time
from collections.abc import Callable, Iterator

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric

DELIVERIES = Counter(
    "sphere_fanout_deliveries",
    "Room events written to a connection (live, gap fill or replay).",
    ["path"],
)
DUPLICATES = Counter(
    "sphere_fanout_duplicates_dropped",
    "Room events offered to a connection that already had them (dropped by its cursor).",
)
REDELIVERIES = Counter(
    "sphere_fanout_redeliveries",
    "Stream entries handled again after a worker lost them (claimed from a dead holder).",
)
DROPS = Counter(
    "sphere_fanout_drops",
    "Items the tier could not hand on and did not repair (must stay 0).",
    ["reason"],
)
DEAD_LETTERS = Counter(
    "sphere_fanout_dead_letters",
    "Stream entries moved to a dead-letter stream.",
)
RESYNCS = Counter(
    "sphere_fanout_resyncs",
    "room.resync frames sent because a gap could not be filled in place.",
)
SWEPT = Counter(
    "sphere_fanout_swept",
    "Committed events published again by the outbox sweep.",
)
HANDOFFS = Counter(
    "sphere_fanout_handoffs",
    "Batches handed to gateways (one per gateway per item).",
)
READERS_CACHE = Counter(
    "sphere_fanout_readers_cache",
    "Lookups of a room's readers in a partition's cache.",
    ["result"],
)
LATENCY = Histogram(
    "sphere_fanout_latency_seconds",
    "From publishing a room event to writing it to a connection's outbound queue.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
CONNECTIONS = Gauge(
    "sphere_gateway_connections",
    "Open WebSocket connections in this gateway process.",
)
LOOP_LAG = Histogram(
    "sphere_gateway_loop_lag_seconds",
    "How late the gateway's event loop ran a callback scheduled for a known time (a probe "
    "every half second): time the loop spent on other work, or waiting for the GIL.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
SEND = Histogram(
    "sphere_send_seconds",
    "From a send's arrival at the gateway to its acknowledgement.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
PARTITIONS_HELD = Gauge(
    "sphere_fanout_partitions_held",
    "Partitions whose lease this worker process holds.",
)


class LoopLagProbe:
    """Measures how late an event loop runs a timer: one ``call_at`` every ``period`` seconds,
    observed into ``LOOP_LAG`` and scheduled again; no task, nothing else at idle."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        period: float = 0.5,
        observe: Callable[[float], None] = LOOP_LAG.observe,
    ) -> None:
        self.loop = loop
        self.period = period
        self.observe = observe
        self.handle: asyncio.TimerHandle | None = None
        self._schedule()

    def _schedule(self) -> None:
        self.handle = self.loop.call_at(self.loop.time() + self.period, self._tick)

    def _tick(self) -> None:
        assert self.handle is not None
        # The loop runs a timer up to its clock resolution early: never a negative lag.
        self.observe(max(0.0, self.loop.time() - self.handle.when()))
        self._schedule()

    def stop(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None


class RoomSends:
    """Each room's worst send of the last minute, as the gauge ``sphere_room_send_seconds``
    for the slowest ``ROOMS`` rooms alone: the label set stays bounded, and a room that drops
    out of them (or whose worst send ages out of the minute) leaves the gauge.

    The minute is kept in ``SLOTS`` slots of ``SLOT_S`` seconds, each the worst send per room
    of its slot; a send costs one dictionary update, and the ranking is made at scrape time."""

    ROOMS = 10
    SLOT_S = 6.0
    SLOTS = 10  # the minute

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.lock = threading.Lock()  # sends are observed from worker threads and the loop
        self.slots: dict[int, dict[int, float]] = {}  # slot number: room: worst seconds

    def observe(self, room_id: int, seconds: float) -> None:
        slot = int(self.clock() // self.SLOT_S)
        with self.lock:
            worst = self.slots.get(slot)
            if worst is None:
                worst = self.slots[slot] = {}
                for old in [s for s in self.slots if s <= slot - self.SLOTS]:
                    del self.slots[old]
            if seconds > worst.get(room_id, -1.0):
                worst[room_id] = seconds

    def slowest(self) -> list[tuple[int, float]]:
        """The slowest rooms of the last minute and their worst send, slowest first."""
        first = int(self.clock() // self.SLOT_S) - self.SLOTS + 1
        merged: dict[int, float] = {}
        with self.lock:
            for slot, worst in self.slots.items():
                if slot < first:
                    continue
                for room_id, seconds in worst.items():
                    if seconds > merged.get(room_id, -1.0):
                        merged[room_id] = seconds
        return heapq.nlargest(self.ROOMS, merged.items(), key=lambda item: item[1])

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "sphere_room_send_seconds",
            "The slowest rooms' worst send in the last minute, at most 10 rooms.",
            labels=["room"],
        )
        for room_id, seconds in self.slowest():
            gauge.add_metric([str(room_id)], seconds)
        yield gauge


ROOM_SENDS = RoomSends()
REGISTRY.register(ROOM_SENDS)


def observe_send(room_id: int, seconds: float) -> None:
    """A send to ``room_id`` acknowledged ``seconds`` after it arrived: into
    ``sphere_send_seconds``, and into ``sphere_room_send_seconds`` where the room is among
    the slowest of the last minute. Any thread."""
    SEND.observe(seconds)
    ROOM_SENDS.observe(room_id, seconds)


class PartitionCollector:
    """Per-partition lag, pending and dead-letter counts, read from the transport at scrape
    time (only the scaled mode's partitions have a backlog to show)."""

    def describe(self) -> list[Metric]:
        # Registering asks for the names; the figures are read at scrape time only.
        return []

    def collect(self) -> Iterator[Metric]:
        from fanout.transport import current

        stats = current().partition_stats()
        if stats is None:
            return
        lag = GaugeMetricFamily(
            "sphere_fanout_partition_lag",
            "Entries of a partition stream not yet read by its worker.",
            labels=["partition"],
        )
        pending = GaugeMetricFamily(
            "sphere_fanout_partition_pending",
            "Entries read by a partition's worker and not yet acknowledged.",
            labels=["partition"],
        )
        dead = GaugeMetricFamily(
            "sphere_fanout_partition_dead_letters",
            "Entries in a partition's dead-letter stream.",
            labels=["partition"],
        )
        for stat in stats:
            label = [str(stat.partition)]
            if stat.lag is not None:
                lag.add_metric(label, stat.lag)
            if stat.pending is not None:
                pending.add_metric(label, stat.pending)
            if stat.dead_letters is not None:
                dead.add_metric(label, stat.dead_letters)
        yield lag
        yield pending
        yield dead


REGISTRY.register(PartitionCollector())
