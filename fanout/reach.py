"""Link reach (contract section 6): per community and URL, the distinct users who could read a
room where the URL was posted, and how many messages carried it.

The fan-out router calls :func:`urls_in` on a new message's body and :func:`record` with the
room's readers at the moment it fans the message out; the API reads with :func:`reach_of`.

Guarantees: the embedded mode counts exactly in the database (``LinkStat`` and ``LinkReader``);
the scaled mode keeps a Redis HyperLogLog of readers (standard error about 0.81 %) and a set of
the messages (``room:seq``) that carried the URL, both under the community's hash tag, written
in one MULTI so that a message counts in both or in neither; both are idempotent, so a message
handed over again after a worker died counts once. A failure of the store is logged and the
message not counted: it never holds up delivery. URLs and message bodies are never logged.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Collection, Sequence
from urllib.parse import urlsplit, urlunsplit

import redis
import redis.asyncio as aioredis
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import Count, F

from fanout.models import LinkReader, LinkStat
from fanout.store import Keys, async_client, sync_client
from sphere.errors import ApplicationError

logger = logging.getLogger(__name__)

SCHEMES = frozenset({"http", "https"})
MAX_URL_LENGTH = 2048
# Distinct URLs counted per message, and candidates looked at to find them: the cost of one
# message stays bounded whatever its body holds.
MAX_URLS = 10
MAX_CANDIDATES = 100
DIGEST_LENGTH = 32
# Members added per PFADD, and reader rows per INSERT.
BATCH = 1000

# A URL starts at "http://" or "https://" not glued to a preceding word, and runs to the first
# character that cannot appear in one unescaped.
_CANDIDATE = re.compile(r"(?<![\w+.\-])https?://[^\s<>\"'`{}|\\^]+", re.IGNORECASE)
# Prose punctuation that ends a sentence rather than the URL.
_TRAILING = ".,;:!?*'\""
_CLOSERS = {")": "(", "]": "["}


class ReachUnavailable(ApplicationError):
    """The store of the scaled mode did not answer."""

    status, code = 503, "unavailable"


def normalize_url(url: str) -> str | None:
    """The URL as links are compared: scheme and host lower-cased, no fragment, no trailing
    slash on the path, the query kept. None unless an http(s) URL with a host, printable, with
    no inner whitespace, of at most ``MAX_URL_LENGTH`` characters.

    Idempotent, so a normalized URL given back to the API finds the same link: the path loses
    every trailing slash (``/a//`` and ``/a/`` are ``/a``).
    """
    if not isinstance(url, str):
        return None
    url = url.strip()
    if not url or len(url) > MAX_URL_LENGTH or not url.isprintable() or " " in url:
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port  # raises ValueError for a port that is not one
    except ValueError:
        return None
    if parts.scheme.lower() not in SCHEMES or not host:
        return None
    userinfo, at, hostport = parts.netloc.rpartition("@")
    netloc = userinfo + at + hostport.lower().removesuffix(":")
    path = parts.path.rstrip("/")
    normalized = urlunsplit((parts.scheme.lower(), netloc, path, parts.query, ""))
    return normalized if len(normalized) <= MAX_URL_LENGTH else None


def _trim(candidate: str) -> str:
    """Drop the punctuation that closes the sentence around a URL: trailing dots, commas,
    quotes, and a closing bracket that the URL did not open (``(see https://a.example/x)``)."""
    opened = {closer: candidate.count(opener) for closer, opener in _CLOSERS.items()}
    closed = {closer: candidate.count(closer) for closer in _CLOSERS}
    end = len(candidate)
    while end:
        last = candidate[end - 1]
        unopened = last in _CLOSERS and opened[last] < closed[last]
        if last not in _TRAILING and not unopened:
            break
        if unopened:
            closed[last] -= 1
        end -= 1
    return candidate[:end]


def urls_in(body: str) -> tuple[str, ...]:
    """The distinct normalized http(s) URLs of a message body, in order of first appearance,
    at most ``MAX_URLS``."""
    if not isinstance(body, str):
        return ()
    found: dict[str, None] = {}
    for index, match in enumerate(_CANDIDATE.finditer(body)):
        if index >= MAX_CANDIDATES or len(found) >= MAX_URLS:
            break
        normalized = normalize_url(_trim(match.group()))
        if normalized is not None:
            found.setdefault(normalized, None)
    return tuple(found)


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
    client: aioredis.Redis | None = None,
) -> None:
    """Count one message (``(room_id, seq)``) carrying ``urls`` (normalized again here,
    deduplicated, at most MAX_URLS) in ``community_id``: each URL gains the ``reader_ids`` it
    had not reached yet and one share. On Redis both counts are idempotent, so a message
    handed over twice (a worker that died before acknowledging it) counts once.

    Raises nothing for a failing store: the failure is logged (without the URLs) and the
    message is not counted. Scaled mode uses ``client`` when given, else a client of its own
    that it closes.
    """
    links = _links(urls)
    if not links:
        return
    readers = sorted({int(user) for user in reader_ids})
    member = f"{message[0]}:{message[1]}"
    try:
        if not settings.SCALED:
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


def reach_of(*, community_id: int, url: str) -> tuple[int, int]:
    """``(reach, shares)`` of the URL in the community; ``(0, 0)`` for an unknown or invalid
    URL. Raises ReachUnavailable (503) when the scaled mode's Redis does not answer."""
    normalized = normalize_url(url)
    if normalized is None:
        return 0, 0
    digest = digest_of(normalized)
    if not settings.SCALED:
        row = (
            LinkStat.objects.filter(community_id=community_id, digest=digest)
            .annotate(reach=Count("readers"))
            .values_list("reach", "shares")
            .first()
        )
        return (int(row[0]), int(row[1])) if row is not None else (0, 0)
    keys = Keys()
    client = sync_client()
    try:
        # Two commands, not a pipeline: a cluster client refuses PFCOUNT in one (it may span
        # slots in general; here both keys share the community's tag).
        reach = client.pfcount(keys.reach(community_id, digest))
        shares = client.scard(keys.shares(community_id, digest))
    except (redis.RedisError, OSError) as exc:
        logger.warning("link reach: Redis did not answer: %s", type(exc).__name__)
        raise ReachUnavailable("Link reach is unavailable; try again shortly.") from exc
    return int(reach or 0), int(shares or 0)
