"""URLs in message bodies, as link reach compares them (docs/api.md, "Link reach").

:func:`urls_in` finds the distinct http(s) URLs of a body, normalized by :func:`normalize_url`:
scheme and host lower-cased, no fragment, no trailing slash. A new message's URLs travel with
its room event to the fan-out tier, which hands them to link reach with the room's readers.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

SCHEMES = frozenset({"http", "https"})
MAX_URL_LENGTH = 2048
# Distinct URLs counted per message, and candidates looked at to find them: the cost of one
# message stays bounded whatever its body holds.
MAX_URLS = 10
MAX_CANDIDATES = 100

# A URL starts at "http://" or "https://" not glued to a preceding word, and runs to the first
# character that cannot appear in one unescaped.
_CANDIDATE = re.compile(r"(?<![\w+.\-])https?://[^\s<>\"'`{}|\\^]+", re.IGNORECASE)
# Prose punctuation that ends a sentence rather than the URL.
_TRAILING = ".,;:!?*'\""
_CLOSERS = {")": "(", "]": "["}


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
