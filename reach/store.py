"""Link reach (docs/api.md, "Link reach"): per community and URL, the distinct users who could
read a room where the URL was posted, and how many messages carried it.

The chat app puts the URLs of a new message's body (``chat.links.urls_in``) in its room event;
the fan-out router, at the moment it fans the message out, hands the room's readers to
:class:`LinkReach` (registered with the tier at start-up, ``fanout.hooks``); the API reads with
:func:`reach_of`.

Guarantees: where the tier keeps no shared Redis (the embedded mode) counts are exact, in the
database (``LinkStat`` and ``LinkReader``); the scaled mode keeps a Redis HyperLogLog of readers
(standard error about 0.81 %) and a set of the messages (``room:seq``) that carried the URL,
both under the community's hash tag, written in one MULTI so that a message counts in both or
in neither; both are idempotent, so a message handed over again after a worker died counts
once. A failure of the store is logged and the message not counted: it never holds up
delivery. URLs and message bodies are never logged.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Collection, Sequence
from typing import Any

import redis
import redis.asyncio as aioredis
from channels.db import database_sync_to_async
from django.db import DatabaseError, transaction
from django.db.models import Count, F

from chat.links import MAX_URLS, normalize_url
from fanout.redis.keys import Keys, async_client
from fanout.transport import current as fanout_transport
from reach.models import LinkReader, LinkStat
from sphere.errors import ApplicationError

logger = logging.getLogger(__name__)

DIGEST_LENGTH = 32
# Members added per PFADD, and reader rows per INSERT.
BATCH = 1000


class ReachUnavailable(ApplicationError):
    """The store of the scaled mode did not answer."""

    status, code = 503, "unavailable"


def digest_of(url: str) -> str:
    """The key of a normalized URL: sha256, hex, first ``DIGEST_LENGTH`` characters."""
    return hashlib.sha256(url.encode()).hexdigest()[:DIGEST_LENGTH]


def _links(urls: Sequence[str]) -> dict[str, str]:
    """Digest -> normalized URL for the distinct valid ones of ``urls``, at most MAX_URLS."""
    links: dict[str, str] = {}
    for url in urls:
        normalized = normalize_url(url)
        if normalized is not None:
            links.setdefault(digest_of(normalized), normalized)
            if len(links) >= MAX_URLS:
                break
    return links


def _record_in_db(community_id: int, links: dict[str, str], readers: list[int]) -> None:
    """Three statements, then one insert of readers per URL (in batches of BATCH rows)."""
    with transaction.atomic():
        LinkStat.objects.bulk_create(
            [LinkStat(community_id=community_id, digest=d, url=u) for d, u in links.items()],
            ignore_conflicts=True,
        )
        ids = list(
            LinkStat.objects.filter(community_id=community_id, digest__in=list(links)).values_list(
                "pk", flat=True
            )
        )
        LinkStat.objects.filter(pk__in=ids).update(shares=F("shares") + 1)
        for link in ids if readers else ():
            LinkReader.objects.bulk_create(
                [LinkReader(link_id=link, user_id=user) for user in readers],
                ignore_conflicts=True,
                batch_size=BATCH,
            )


async def _record_in_redis(
    client: aioredis.Redis,
    community_id: int,
    links: dict[str, str],
    readers: list[int],
    message: str,
) -> None:
    keys = Keys()
    # Every key carries the community's hash tag: one slot, so one MULTI.
    async with client.pipeline(transaction=True) as pipe:
        for digest in links:
            reach_key = keys.reach(community_id, digest)
            for start in range(0, len(readers), BATCH):
                pipe.pfadd(reach_key, *readers[start : start + BATCH])
            pipe.sadd(keys.shares(community_id, digest), message)
        await pipe.execute()


async def record(
    *,
    community_id: int,
    urls: Sequence[str],
    reader_ids: Collection[int],
    message: tuple[int, int],
    client: Any = None,
) -> None:
    """Count one message (``(room_id, seq)``) carrying ``urls`` (normalized again here,
    deduplicated, at most MAX_URLS) in ``community_id``: each URL gains the ``reader_ids`` it
    had not reached yet and one share. On Redis both counts are idempotent, so a message
    handed over twice (a worker that died before acknowledging it) counts once.

    Raises nothing for a failing store: the failure is logged (without the URLs) and the
    message is not counted. On Redis it uses ``client`` when given (the worker's), else a
    client of its own that it closes.
    """
    links = _links(urls)
    if not links:
        return
    readers = sorted({int(user) for user in reader_ids})
    member = f"{message[0]}:{message[1]}"
    try:
        if fanout_transport().shared_redis() is None:
            store = database_sync_to_async(_record_in_db, thread_sensitive=False)
            await store(community_id, links, readers)
        elif client is not None:
            await _record_in_redis(client, community_id, links, readers, member)
        else:
            own = async_client()
            try:
                await _record_in_redis(own, community_id, links, readers, member)
            finally:
                await own.aclose()
    except (DatabaseError, redis.RedisError, OSError) as exc:
        logger.warning(
            "link reach: %d link(s) of a message in community %s not counted: %s",
            len(links),
            community_id,
            type(exc).__name__,
        )


class LinkReach:
    """The tier's ``LinkCounter`` hook (``fanout.hooks``): :func:`record`."""

    record = staticmethod(record)


def reach_of(*, community_id: int, url: str) -> tuple[int, int]:
    """``(reach, shares)`` of the URL in the community; ``(0, 0)`` for an unknown or invalid
    URL. Raises ReachUnavailable (503) when the shared Redis does not answer."""
    normalized = normalize_url(url)
    if normalized is None:
        return 0, 0
    digest = digest_of(normalized)
    client = fanout_transport().shared_redis()
    if client is None:
        row = (
            LinkStat.objects.filter(community_id=community_id, digest=digest)
            .annotate(reach=Count("readers"))
            .values_list("reach", "shares")
            .first()
        )
        return (int(row[0]), int(row[1])) if row is not None else (0, 0)
    keys = Keys()
    try:
        # Two commands, not a pipeline: a cluster client refuses PFCOUNT in one (it may span
        # slots in general; here both keys share the community's tag).
        reach = client.pfcount(keys.reach(community_id, digest))
        shares = client.scard(keys.shares(community_id, digest))
    except (redis.RedisError, OSError) as exc:
        logger.warning("link reach: Redis did not answer: %s", type(exc).__name__)
        raise ReachUnavailable("Link reach is unavailable; try again shortly.") from exc
    return int(reach or 0), int(shares or 0)
