"""Redis for the scaled fan-out tier: clients with explicit pools and timeouts, and key names.

Every key carries a hash tag (the part in braces), so that what one command or script touches
lives in one Redis Cluster slot: a partition's stream, dead letters and routed seqs share
``{pN}``; the workers' coordination (every partition's lease, the workers' heartbeats, the sweep
flag) shares ``{leases}``, so that a worker's lease round is one script; a user shard's registry
``{uN}``; a gateway's inbox ``{gID}``; a community's link reach ``{cN}``. No command here spans
two tags, so moving to a cluster is configuration, not code.
"""

from __future__ import annotations

import threading
from typing import cast

import redis
import redis.asyncio as aioredis
from django.conf import settings

# redis-py changed its default pool size and socket timeouts between major versions; Sphere
# states its own. A blocking read (XREADGROUP, XREAD BLOCK) is long, so that an idle process
# reads rarely (a read returns as soon as an entry arrives: its length costs no latency); it is
# made on a client of its own whose socket timeout leaves a loaded server ``SOCKET_TIMEOUT_S``
# to answer after the block ends.
SOCKET_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 2.0
BLOCK_MS = 15_000
BLOCKING_TIMEOUT_S = BLOCK_MS / 1000 + SOCKET_TIMEOUT_S
ASYNC_POOL = 64
SYNC_POOL = 32


def fanout_url() -> str:
    """Where the fan-out tier's keys live: ``SPHERE_FANOUT_REDIS_URL``, else ``REDIS_URL``."""
    return str(settings.FANOUT_REDIS_URL or settings.REDIS_URL)


def async_client(*, blocking: bool = False) -> aioredis.Redis:
    """A client for the running event loop (the caller closes it with ``aclose``). A burst
    of callers waits for a pooled connection instead of failing when the pool is full. With
    ``FANOUT_REDIS_CLUSTER``, a cluster client (one pool per node, commands routed by slot).
    ``blocking``: for blocking reads of ``BLOCK_MS`` only (a longer socket timeout)."""
    timeout = BLOCKING_TIMEOUT_S if blocking else SOCKET_TIMEOUT_S
    if settings.FANOUT_REDIS_CLUSTER:
        from redis.asyncio.cluster import RedisCluster

        cluster = RedisCluster.from_url(
            fanout_url(),
            max_connections=ASYNC_POOL,
            socket_timeout=timeout,
            socket_connect_timeout=CONNECT_TIMEOUT_S,
            health_check_interval=30,
        )
        return cast(aioredis.Redis, cluster)  # the same commands, routed by slot
    pool = aioredis.BlockingConnectionPool.from_url(
        fanout_url(),
        max_connections=ASYNC_POOL,
        timeout=SOCKET_TIMEOUT_S,
        socket_timeout=timeout,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        health_check_interval=30,
    )
    return aioredis.Redis.from_pool(pool)  # closing the client closes its pool


_sync: redis.Redis | None = None
_sync_url = ""
_sync_lock = threading.Lock()


def sync_client() -> redis.Redis:
    """The process's shared client for synchronous code (publishing on commit)."""
    global _sync, _sync_url
    url = fanout_url()
    with _sync_lock:
        if _sync is None or _sync_url != url:
            if settings.FANOUT_REDIS_CLUSTER:
                from redis.cluster import RedisCluster

                _sync = cast(
                    redis.Redis,
                    RedisCluster.from_url(
                        url,
                        max_connections=SYNC_POOL,
                        socket_timeout=SOCKET_TIMEOUT_S,
                        socket_connect_timeout=CONNECT_TIMEOUT_S,
                        health_check_interval=30,
                    ),
                )
            else:
                pool = redis.BlockingConnectionPool.from_url(
                    url,
                    max_connections=SYNC_POOL,
                    timeout=SOCKET_TIMEOUT_S,
                    socket_timeout=SOCKET_TIMEOUT_S,
                    socket_connect_timeout=CONNECT_TIMEOUT_S,
                    health_check_interval=30,
                )
                _sync = redis.Redis(connection_pool=pool)
            _sync_url = url
        return _sync


class Keys:
    """Key names under the deployment's prefix."""

    def __init__(self, prefix: str | None = None) -> None:
        self.prefix = prefix if prefix is not None else settings.FANOUT_PREFIX

    def stream(self, partition: int) -> str:
        return f"{self.prefix}:{{p{partition}}}:events"

    def dead(self, partition: int) -> str:
        return f"{self.prefix}:{{p{partition}}}:dead"

    def routed(self, partition: int) -> str:
        """Hash of the partition's rooms: room id -> the highest seq its workers have routed
        (only ever raised; what the outbox sweep compares the rooms' heads with)."""
        return f"{self.prefix}:{{p{partition}}}:routed"

    def lease(self, partition: int) -> str:
        """The partition's holder (worker id). Every lease shares one tag with the workers'
        heartbeats, so that a worker renews all of its leases in one script."""
        return f"{self.prefix}:{{leases}}:p{partition}"

    def workers(self) -> str:
        """Sorted set of worker ids scored by their last heartbeat (ms)."""
        return f"{self.prefix}:{{leases}}:workers"

    def sweep_due(self) -> str:
        """Set by a publisher whose failed publish later went through: the holder of partition
        0 sweeps at its next lease round instead of waiting for the slow pass."""
        return f"{self.prefix}:{{leases}}:sweep"

    def where(self, shard: int) -> str:
        """Hash of a user shard: user id -> the ids of the gateways holding the user."""
        return f"{self.prefix}:{{u{shard}}}:where"

    def inbox(self, gateway: str) -> str:
        return f"{self.prefix}:{{g{gateway}}}:inbox"

    def mark(self, gateway: str) -> str:
        """Set when a gateway registers; its absence means Redis lost the registry."""
        return f"{self.prefix}:{{g{gateway}}}:mark"

    def gateways(self) -> str:
        """Sorted set of gateway ids scored by their last heartbeat (ms)."""
        return f"{self.prefix}:gateways"

    def reach(self, community_id: int, digest: str) -> str:
        return f"{self.prefix}:{{c{community_id}}}:reach:{digest}"

    def shares(self, community_id: int, digest: str) -> str:
        """Set of the messages (``room:seq``) that carried the URL: a redelivered message is
        one member, not a second share."""
        return f"{self.prefix}:{{c{community_id}}}:shared:{digest}"


GROUP = "fanout"


def text(value: object) -> str:
    """A Redis reply as text."""
    return value.decode() if isinstance(value, bytes) else str(value)
