"""Posting limits: the message rate, slow mode and automod terms (the rates of other acts live
in ``sphere.rates``; the names are exported here too)."""

from __future__ import annotations

import functools
import re

from django.conf import settings

from chat.models import BlockedTerm
from communities.models import Community
from sphere.errors import ApplicationError, RateLimited
from sphere.rates import check_act_rate, parse_rate, take_rate

__all__ = ["BlockedContent", "check_act_rate", "parse_rate", "take_rate"]


class BlockedContent(ApplicationError):
    status, code = 400, "blocked_content"


def check_message_rate(*, user_id: int) -> None:
    """Raise RateLimited (with ``retry_after``) past ``SPHERE_RATE_MESSAGES`` for this user."""
    wait = take_message_rate([user_id])[0]
    if wait is not None:
        raise RateLimited("Too many messages; slow down.", retry_after=wait)


def take_message_rate(user_ids: list[int]) -> list[float | None]:
    """Count one message for each entry (a user may appear more than once, in order); for
    each, None when it is within ``SPHERE_RATE_MESSAGES``, else the seconds to wait.

    A window opens with the user's first message and lasts one period, so a burst cannot
    straddle a clock-aligned boundary to get twice the rate. It lives in the shared cache: per
    process in the embedded mode, in Redis (so across every gateway) in the scaled mode, where
    one pipelined round trip counts the messages of a whole batch.
    """
    return take_rate("msg", settings.MESSAGE_RATE, user_ids)


@functools.lru_cache(maxsize=1024)
def term_patterns(
    terms: tuple[tuple[str, str], ...],
) -> tuple[re.Pattern[str] | None, re.Pattern[str] | None]:
    """The block and flag patterns of a community's term set (whole words, any case),
    compiled once per set."""

    def pattern(words: list[str]) -> re.Pattern[str] | None:
        if not words:
            return None
        alternatives = "|".join(re.escape(word) for word in words)
        return re.compile(r"(?<!\w)(" + alternatives + r")(?!\w)", re.IGNORECASE)

    block = [term for term, action in terms if action == BlockedTerm.Action.BLOCK]
    flag = [term for term, action in terms if action == BlockedTerm.Action.FLAG]
    return pattern(block), pattern(flag)


def automod_check(terms: tuple[tuple[str, str], ...], body: str) -> list[str]:
    """Raise BlockedContent when ``body`` has a blocked term of ``terms`` ((term, action)
    pairs); return the flag terms it has."""
    if not terms:
        return []
    block, flag = term_patterns(terms)
    if block is not None and block.search(body):
        raise BlockedContent("The message contains a blocked term.")
    if flag is None:
        return []
    return sorted({m.group(1).lower() for m in flag.finditer(body)})


def automod(*, community: Community | None, body: str) -> list[str]:
    """Raise BlockedContent when ``body`` has a blocked term of the community (None: a DM, the
    site's terms); return the flag terms it has."""
    terms = BlockedTerm.objects.filter(community=community).order_by("term")
    return automod_check(tuple(terms.values_list("term", "action")), body)
