"""Prometheus metrics of the fan-out tier (served at ``/metrics`` by gateways and by
``fanout_worker --metrics-port``)."""

from __future__ import annotations

from collections.abc import Iterator

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
PARTITIONS_HELD = Gauge(
    "sphere_fanout_partitions_held",
    "Partitions whose lease this worker process holds.",
)


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
