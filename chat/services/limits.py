"""Posting limits: a per-user message rate, slow mode and automod terms."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import redis
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from chat.models import BlockedTerm, Message
from communities.models import Community, Room
from sphere.cache import cache_is_shared
from sphere.errors import ApplicationError, RateLimited

_PERIODS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hour": 3600, "d": 86400, "day": 86400}


class BlockedContent(ApplicationError):
    status, code = 400, "blocked_content"


def parse_rate(rate: str) -> tuple[int, int]:
    """``"20/10s"``, ``"30/min"``: (count, period in seconds)."""
    count, _, period = rate.partition("/")
    match = re.fullmatch(r"(\d*)\s*([a-z]+)", period.strip())
    if not match or match.group(2) not in _PERIODS:
        raise ValueError(f"bad rate {rate!r}")
    return int(count), int(match.group(1) or 1) * _PERIODS[match.group(2)]


def check_message_rate(*, user_id: int) -> None:
    """Raise RateLimited (with ``retry_after``) past ``SPHERE_RATE_MESSAGES`` for this user.

    A window opens with the user's first message and lasts one period, so a burst cannot
    straddle a clock-aligned boundary to get twice the rate. It lives in the shared cache: per
    process in the embedded mode, in Redis (so across every gateway) in the scaled mode, where
    one round trip counts the message and reads the window's end.
    """
    count, period = parse_rate(settings.MESSAGE_RATE)
    key = f"rate:msg:{user_id}"
    if cache_is_shared():
        used, left_ms = _count_in_redis(cache.make_key(key), period)
        if used > count:
            raise RateLimited(
                "Too many messages; slow down.", retry_after=max(0.001, left_ms / 1000)
            )
        return
    now = time.time()
    if cache.add(key, 1, timeout=period):
        cache.set(f"{key}:start", now, timeout=period)
        return
    try:
        used = cache.incr(key)
    except ValueError:  # the window closed between add and incr: this message opens one
        cache.set(key, 1, timeout=period)
        cache.set(f"{key}:start", now, timeout=period)
        return
    if used > count:
        start = float(cache.get(f"{key}:start", now))
        raise RateLimited(
            "Too many messages; slow down.", retry_after=max(0.001, start + period - now)
        )


def check_slow_mode(*, room: Room, user_id: int) -> None:
    """Raise RateLimited (code ``slow_mode``, with ``retry_after``) when the user's last message
    in the room is more recent than the room's slow mode allows."""
    if not room.slow_mode_s:
        return
    last = (
        Message.objects.filter(room=room, author_id=user_id)
        .order_by("-created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    if last is None:
        return
    wait = (last + timedelta(seconds=room.slow_mode_s) - timezone.now()).total_seconds()
    if wait > 0:
        raise RateLimited(
            f"Slow mode: one message every {room.slow_mode_s} s.",
            code="slow_mode",
            retry_after=wait,
        )


_client: redis.Redis | None = None
_client_url = ""


def _count_in_redis(key: str, period: int) -> tuple[int, int]:
    """Open the window if none is open, count one message in it; (count, ms left)."""
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
    pipe.set(key, 0, ex=period, nx=True)
    pipe.incr(key)
    pipe.pttl(key)
    _, used, left_ms = pipe.execute()
    return int(used), max(0, int(left_ms))


def _pattern(terms: list[str]) -> re.Pattern[str]:
    return re.compile(
        r"(?<!\w)(" + "|".join(re.escape(t) for t in terms) + r")(?!\w)", re.IGNORECASE
    )


def automod(*, community: Community, body: str) -> list[str]:
    """Raise BlockedContent when ``body`` has a blocked term (as a whole word, any case);
    return the flag terms it has."""
    terms = list(BlockedTerm.objects.filter(community=community).values_list("term", "action"))
    if not terms:
        return []
    blocked = [t for t, action in terms if action == BlockedTerm.Action.BLOCK]
    if blocked and _pattern(blocked).search(body):
        raise BlockedContent("The message contains a blocked term.")
    flagged = [t for t, action in terms if action == BlockedTerm.Action.FLAG]
    if not flagged:
        return []
    return sorted({m.group(1).lower() for m in _pattern(flagged).finditer(body)})
