"""What the writer takes and answers: a send, its answer, and the body rules a send meets."""

from __future__ import annotations

import re
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime

from sphere.errors import Invalid

MAX_BODY = 4000
MENTION_RE = re.compile(r"(?<![\w@])@([A-Za-z0-9_]{3,32})\b")


@dataclass(slots=True)
class Send:
    """One message to store. ``body`` is as sent (trimmed and checked by the writer, after the
    idempotency look-up: a repeat is answered whatever its body)."""

    author_id: int
    author_name: str
    room_id: int
    body: str
    client_msg_id: str
    reply_to: int | None = None
    thread_root: int | None = None
    arrived: float = field(default_factory=time.monotonic)
    future: Future[Stored] | None = None


@dataclass(frozen=True, slots=True)
class Stored:
    """A send's answer: the message (new, or the original of a repeat)."""

    message_id: int
    room_id: int
    seq: int
    created: bool
    body: str = ""
    reply_to: int | None = None
    mentions: tuple[int, ...] = ()
    created_at: datetime | None = None
    thread_root: int | None = None


@dataclass(slots=True)
class _Room:
    community_id: int | None  # None: a DM
    head_seq: int
    access_version: int
    slow_mode_s: int
    private: bool


@dataclass(slots=True)
class _Root:
    """A message named as a ``thread_root``, with its thread's summary as stored."""

    room_id: int
    thread_root: int | None  # a reply itself (then it cannot be a root)
    reply_count: int
    participants: list[int]
    author_id: int | None = None


def clean_body(body: str) -> str:
    body = body.strip()
    if not 1 <= len(body) <= MAX_BODY:
        raise Invalid(
            "A message is 1 to 4,000 characters.",
            fields={"body": [f"1 to {MAX_BODY} characters after trimming."]},
        )
    if "\x00" in body:
        raise Invalid("NUL characters are not allowed.", fields={"body": ["No NUL characters."]})
    return body


def mention_names(body: str) -> set[str]:
    """The names written as ``@username``, lower case."""
    return {name.lower() for name in MENTION_RE.findall(body)} if "@" in body else set()
