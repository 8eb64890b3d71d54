"""Per-user rates of acts, each in its own window: in the shared cache, so per process in the
embedded mode and across every gateway (in Redis) in the scaled mode (docs/api.md, "Rate
limits")."""

from __future__ import annotations

import re
import time

import redis
from django.conf import settings
from django.core.cache import cache

from sphere.cache import cache_is_shared
from sphere.errors import RateLimited

_PERIODS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hour": 3600, "d": 86400, "day": 86400}


def parse_rate(rate: str) -> tuple[int, int]:
    """``"20/10s"``, ``"30/min"``: (count, period in seconds)."""
    count, _, period = rate.partition("/")
    match = re.fullmatch(r"(\d*)\s*([a-z]+)", period.strip())
    if not match or match.group(2) not in _PERIODS:
        raise ValueError(f"bad rate {rate!r}")
    return int(count), int(match.group(1) or 1) * _PERIODS[match.group(2)]


def take_rate(kind: str, rate: str, user_ids: list[int]) -> list[float | None]:
    """Count one act of ``kind`` for each entry in its own per-user window of ``rate``; for
    each, None when within the rate, else the seconds to wait (see ``take_message_rate``)."""
    if not user_ids:
        return []
    count, period = parse_rate(rate)
    if cache_is_shared():
        answers = _count_in_redis([cache.make_key(f"rate:{kind}:{u}") for u in user_ids], period)
        return [max(0.001, left_ms / 1000) if used > count else None for used, left_ms in answers]
    return [_count_locally(f"rate:{kind}:{user_id}", count, period) for user_id in user_ids]


# What each act's refusal says (the acts of ``settings.ACT_RATES``).
_ACT_NAMES = {
    "reaction": "reactions",
    "edit": "edits",
    "delete": "deletions",
    "read": "read marker moves",
    "report": "reports",
    "dm": "new direct messages",
    "follow": "thread follows",
}


def check_act_rate(act: str, *, user_id: int) -> None:
    """Count one act (``reaction``, ``edit``, ``delete``, ``read``, ``report``) of the user;
    raise RateLimited (with ``retry_after``) past its rate in ``settings.ACT_RATES``
    (``SPHERE_RATE_REACTIONS`` and the like; docs/api.md, "Rate limits")."""
    wait = take_rate(act, settings.ACT_RATES[act], [user_id])[0]
    if wait is not None:
        raise RateLimited(f"Too many {_ACT_NAMES[act]}; slow down.", retry_after=wait)


def _count_locally(key: str, count: int, period: int) -> float | None:
    now = time.time()
    if cache.add(key, 1, timeout=period):
        cache.set(f"{key}:start", now, timeout=period)
        return None
    try:
        used = cache.incr(key)
    except ValueError:  # the window closed between add and incr: this message opens one
        cache.set(key, 1, timeout=period)
        cache.set(f"{key}:start", now, timeout=period)
        return None
    if used > count:
        start = float(cache.get(f"{key}:start", now))
        return max(0.001, start + period - now)
    return None


_client: redis.Redis | None = None
_client_url = ""


def _count_in_redis(keys: list[str], period: int) -> list[tuple[int, int]]:
    """Open each key's window if none is open and count one message in it, in one pipeline;
    (count, ms left) per key."""
    global _client, _client_url
    if _client is None or _client_url != settings.REDIS_URL:
        # Pool size and timeouts stated: redis-py's defaults changed between major versions.
        pool = redis.BlockingConnectionPool.from_url(
            settings.REDIS_URL,
            max_connections=64,
            timeout=10,
            socket_timeout=5,
            socket_connect_timeout=2,
            health_check_interval=30,
        )
        _client, _client_url = redis.Redis(connection_pool=pool), settings.REDIS_URL
    pipe = _client.pipeline(transaction=True)
    for key in keys:
        pipe.set(key, 0, ex=period, nx=True)
        pipe.incr(key)
        pipe.pttl(key)
    answers = pipe.execute()
    return [(int(answers[i + 1]), max(0, int(answers[i + 2]))) for i in range(0, len(answers), 3)]
