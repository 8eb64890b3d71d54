"""Liveness of the fan-out transport, for ``/healthz``."""

from __future__ import annotations

import redis.asyncio as aioredis
from django.conf import settings

from fanout.store import fanout_url


async def fanout_ready() -> bool:
    """True when the transport that carries room events answers.

    Embedded mode: the in-process transport lives in this process, so it answers whenever the
    process does. Scaled mode: Redis answers a PING within the socket timeout.
    """
    if not settings.SCALED:
        return True
    # Pool size and timeouts are explicit: redis-py's defaults changed between major versions.
    client: aioredis.Redis
    if settings.FANOUT_REDIS_CLUSTER:
        from redis.asyncio.cluster import RedisCluster

        client = RedisCluster.from_url(  # type: ignore[assignment]
            fanout_url(), socket_timeout=1.0, socket_connect_timeout=1.0
        )
    else:
        client = aioredis.Redis.from_url(
            fanout_url(),
            socket_timeout=1.0,
            socket_connect_timeout=1.0,
            max_connections=2,
        )
    try:
        return bool(await client.ping())
    finally:
        await client.aclose()
