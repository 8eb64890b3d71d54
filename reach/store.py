"""Link reach (docs/api.md, "Link reach"): per community and URL, the distinct users who could
read a room where the URL was posted, and how many messages carried it.

The chat app puts the URLs of a new message's body (``chat.links.urls_in``) in its room event;
the fan-out router, at the moment it fans the message out, hands the room's readers to
:class:`LinkReach` (registered with the tier at start-up, ``fanout.hooks``); the API reads with
:func:`reach_of`.

Counts are kept per room, so that a caller is told only about the rooms they can read
(``reach.selectors``): the reach of several rooms is the distinct users over them, not a sum.

Guarantees: where the tier keeps no shared Redis (the embedded mode) counts are exact, in the
database (``LinkStat`` and ``LinkReader``, one link row per room); the scaled mode keeps, per
room, a Redis HyperLogLog of readers (standard error about 0.81 %) and a set of the messages
(``room:seq``) that carried the URL, plus the set of rooms where the URL was posted, all under
the community's hash tag, written in one MULTI so that a message counts in all or in none;
they are idempotent, so a message handed over again after a worker died counts once. Reading
several rooms merges their HyperLogLogs (one PFCOUNT over their keys: the union, within the
same error). A failure of the store is logged and the message not counted: it never holds up
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
from django.db.models import F, Q, Sum

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


def _reach_key(keys: Keys, community_id: int, digest: str, room_id: int) -> str:
    return f"{keys.reach(community_id, digest)}:{room_id}"


def _shares_key(keys: Keys, community_id: int, digest: str, room_id: int) -> str:
    return f"{keys.shares(community_id, digest)}:{room_id}"


def _rooms_key(keys: Keys, community_id: int, digest: str) -> str:
    """Set of the rooms where the URL was posted: the per-room keys a read looks at."""
    return f"{keys.reach(community_id, digest)}:rooms"


def _record_in_db(
    community_id: int, room_id: int, links: dict[str, str], readers: list[int]
) -> None:
    """Three statements, then one insert of readers per URL (in batches of BATCH rows)."""
    with transaction.atomic():
        LinkStat.objects.bulk_create(
            [
                LinkStat(community_id=community_id, room_id=room_id, digest=d, url=u)
                for d, u in links.items()
            ],
            ignore_conflicts=True,
        )
        ids = list(
            LinkStat.objects.filter(
                community_id=community_id, room_id=room_id, digest__in=list(links)
            ).values_list("pk", flat=True)
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
    room_id = int(message.split(":", 1)[0])
    # Every key carries the community's hash tag: one slot, so one MULTI.
    async with client.pipeline(transaction=True) as pipe:
        for digest in links:
            reach_key = _reach_key(keys, community_id, digest, room_id)
            for start in range(0, len(readers), BATCH):
                pipe.pfadd(reach_key, *readers[start : start + BATCH])
            pipe.sadd(_shares_key(keys, community_id, digest, room_id), message)
            pipe.sadd(_rooms_key(keys, community_id, digest), room_id)
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
            await store(community_id, int(message[0]), links, readers)
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


def reach_of(
    *,
    community_id: int,
    url: str,
    room_ids: Collection[int] | None = None,
    unscoped: bool = True,
) -> tuple[int, int]:
    """``(reach, shares)`` of the URL over the rooms ``room_ids`` of the community (every room
    when None): the distinct readers over those rooms and the messages posted there; ``(0, 0)``
    for an unknown or invalid URL. ``unscoped``: whether counts kept before reach was kept per
    room (no room known) are added too. Raises ReachUnavailable (503) when the shared Redis
    does not answer."""
    normalized = normalize_url(url)
    if normalized is None:
        return 0, 0
    digest = digest_of(normalized)
    client = fanout_transport().shared_redis()
    if client is None:
        stats = LinkStat.objects.filter(community_id=community_id, digest=digest)
        if room_ids is not None:
            rooms = Q(room_id__in=list(room_ids))
            stats = stats.filter(rooms | Q(room_id__isnull=True) if unscoped else rooms)
        elif not unscoped:
            stats = stats.filter(room_id__isnull=False)
        shares = stats.aggregate(total=Sum("shares"))["total"] or 0
        if not shares:
            return 0, 0
        reach = LinkReader.objects.filter(link__in=stats).values("user_id").distinct().count()
        return int(reach), int(shares)
    try:
        return _reach_in_redis(client, community_id, digest, room_ids, unscoped)
    except (redis.RedisError, OSError) as exc:
        logger.warning("link reach: Redis did not answer: %s", type(exc).__name__)
        raise ReachUnavailable("Link reach is unavailable; try again shortly.") from exc


def _reach_in_redis(
    client: redis.Redis,
    community_id: int,
    digest: str,
    room_ids: Collection[int] | None,
    unscoped: bool,
) -> tuple[int, int]:
    keys = Keys()
    posted = {int(room) for room in client.smembers(_rooms_key(keys, community_id, digest))}
    rooms = sorted(posted if room_ids is None else posted & {int(r) for r in room_ids})
    reach_keys = [_reach_key(keys, community_id, digest, room) for room in rooms]
    shares_keys = [_shares_key(keys, community_id, digest, room) for room in rooms]
    if unscoped:  # the community-wide keys of counts kept before rooms were
        reach_keys.append(keys.reach(community_id, digest))
        shares_keys.append(keys.shares(community_id, digest))
    if not reach_keys:
        return 0, 0
    # PFCOUNT on its own, not in a pipeline: a cluster client refuses it in one (it may span
    # slots in general; here every key shares the community's tag). Over several keys it
    # counts their union.
    reach = client.pfcount(*reach_keys)
    with client.pipeline(transaction=False) as pipe:
        for key in shares_keys:
            pipe.scard(key)
        shares = sum(int(n or 0) for n in pipe.execute())
    return int(reach or 0), shares
