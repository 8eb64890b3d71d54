"""The group-commit writer: every new message of a process is stored by one writer, in batches.

Sends from every connection and REST call of the process join one queue. A writer thread, with
one long-lived database connection, takes what is queued (up to ``WRITER_BATCH`` sends) and
stores it in ONE transaction (docs/architecture.md, "The path of a message"):

1. the batch's rooms are locked in id order (their seqs are assigned under the lock);
2. one statement each reads, for the whole batch: the authors' memberships (and, for private
   rooms, their room memberships), the idempotency keys already used, the last message of each
   author in a slow-mode room, the communities' automod terms, the messages replied to and
   the users named in mentions;
3. each send is checked in arrival order (membership, idempotency, body, mute, slow mode,
   automod, reply), then the per-user rate is taken for the sends that passed, in one go;
4. only then are seqs assigned, so a refused send never leaves a gap; the messages and their
   ``message.new`` events go in as two multi-row inserts, each room's head moves in one
   statement, and the transaction commits;
5. the batch's events are handed to the fan-out tier in one publish, and the senders answered.

A batch that fails as a whole (a constraint, a lost connection) is rolled back and stored
again message by message, so one bad message never fails its neighbours; a rollback assigns
no seq. The checks are the same as a lone post's (``chat.services.messages``): the same errors
in the same order, a repeated ``client_msg_id`` answered with the original message whatever
the rest says now. A caller already inside a transaction (a service composing several acts, a
test) stores its send in that transaction through the same statements, without the thread.
"""

# The statements below are put together from table names and counts of placeholders only:
# every value is a parameter.
# ruff: noqa: S608

from __future__ import annotations

import logging
import queue
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from django.conf import settings
from django.contrib.auth.models import User
from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from chat.models import BlockedTerm, Message, Report, RoomEvent
from chat.services.limits import automod_check, take_message_rate
from communities.models import Membership, Room, RoomMember
from communities.roles import Role, at_least
from sphere.errors import ApplicationError, Invalid, Muted, NotFound, RateLimited

logger = logging.getLogger(__name__)

MAX_BODY = 4000
MENTION_RE = re.compile(r"(?<![\w@])@([A-Za-z0-9_]{3,32})\b")
_ADMIN_ROLES = (Role.OWNER.value, Role.ADMIN.value)

_MESSAGES = Message._meta.db_table
_EVENTS = RoomEvent._meta.db_table
_ROOMS = Room._meta.db_table
_MEMBERSHIPS = Membership._meta.db_table
_ROOM_MEMBERS = RoomMember._meta.db_table
_TERMS = BlockedTerm._meta.db_table
_USERS = User._meta.db_table
_json = msgspec.json.Encoder()


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


@dataclass(slots=True)
class _Room:
    community_id: int
    head_seq: int
    access_version: int
    slow_mode_s: int
    private: bool


Outcome = Stored | Exception


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


# --- the statements ---------------------------------------------------------------------------


def _marks(count: int, mark: str = "%s") -> str:
    return ", ".join([mark] * count)


def _pairs(first: str, second: str, count: int) -> str:
    return " OR ".join([f"({first} = %s AND {second} = %s)"] * count)


def _aware(value: Any) -> datetime | None:
    """A timestamp as read back by a raw cursor: aware, in UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@dataclass(slots=True)
class _Reads:
    """What a batch's checks need, read under the rooms' locks."""

    rooms: dict[int, _Room]
    members: dict[tuple[int, int], tuple[str, datetime | None]]  # (community, user)
    in_private: set[tuple[int, int]]  # (room, user) for members of private rooms
    existing: dict[tuple[int, int, str], tuple[int, int]]  # idempotency key -> (id, seq)
    last_posts: dict[tuple[int, int], datetime]  # (room, author) in slow-mode rooms
    terms: dict[int, tuple[tuple[str, str], ...]]  # community -> (term, action) pairs
    parents: dict[int, int]  # message replied to -> its room
    named: dict[tuple[int, str], tuple[int, str]]  # (community, name) -> (user, role)
    ids: list[int] = field(default_factory=list)  # message ids taken ahead (PostgreSQL)


@dataclass(slots=True)
class _Row:
    """A new message: its seq assigned, its payload encoded."""

    message_id: int
    room_id: int
    seq: int
    author_id: int
    client_msg_id: str
    body: str
    reply_to: int | None
    mentions: str  # JSON
    payload: bytes  # the message.new event without type, room and seq framing


class _Batch:
    """A batch's statements, one at a time, with plain SQL any backend runs (SQLite: in
    process, where a statement costs no round trip)."""

    def __init__(self, sends: Sequence[Send]) -> None:
        self.sends = sends
        self.now = timezone.now()
        self.cursor: Any = None

    def rows(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        self.cursor.execute(sql, params)
        return list(self.cursor.fetchall())

    def read(self) -> _Reads:
        with connection.cursor() as self.cursor:
            rooms = self.lock_rooms()
            communities = {room.community_id for room in rooms.values()}
            names = set().union(*(mention_names(s.body) for s in self.sends))
            named = self.named(names, communities)
            slow = {
                (s.room_id, s.author_id)
                for s in self.sends
                if s.room_id in rooms and rooms[s.room_id].slow_mode_s
            }
            private = {room_id for room_id, room in rooms.items() if room.private}
            users = {s.author_id for s in self.sends} | {user for user, _ in named.values()}
            return _Reads(
                rooms=rooms,
                members=self.memberships(rooms),
                in_private=self.room_members(private, users),
                existing=self.existing(),
                last_posts=self.last_posts(slow),
                terms=self.terms(communities),
                parents=self.parents(),
                named=named,
            )

    def lock_rooms(self) -> dict[int, _Room]:
        ids = sorted({send.room_id for send in self.sends})
        lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
        rows = self.rows(
            f"SELECT id, community_id, head_seq, access_version, slow_mode_s, private "
            f"FROM {_ROOMS} WHERE id IN ({_marks(len(ids))}) ORDER BY id{lock}",
            ids,
        )
        return {row[0]: _Room(row[1], row[2], row[3], row[4], bool(row[5])) for row in rows}

    def memberships(
        self, rooms: dict[int, _Room]
    ) -> dict[tuple[int, int], tuple[str, datetime | None]]:
        pairs = sorted(
            {(rooms[s.room_id].community_id, s.author_id) for s in self.sends if s.room_id in rooms}
        )
        if not pairs:
            return {}
        rows = self.rows(
            f"SELECT community_id, user_id, role, muted_until FROM {_MEMBERSHIPS} "
            f"WHERE {_pairs('community_id', 'user_id', len(pairs))}",
            [value for pair in pairs for value in pair],
        )
        return {(row[0], row[1]): (row[2], _aware(row[3])) for row in rows}

    def room_members(self, room_ids: set[int], user_ids: set[int]) -> set[tuple[int, int]]:
        if not room_ids or not user_ids:
            return set()
        rooms, users = sorted(room_ids), sorted(user_ids)
        rows = self.rows(
            f"SELECT room_id, user_id FROM {_ROOM_MEMBERS} "
            f"WHERE room_id IN ({_marks(len(rooms))}) AND user_id IN ({_marks(len(users))})",
            [*rooms, *users],
        )
        return {(row[0], row[1]) for row in rows}

    def existing(self) -> dict[tuple[int, int, str], tuple[int, int]]:
        keys = sorted({(s.room_id, s.author_id, s.client_msg_id) for s in self.sends})
        condition = " OR ".join(
            ["(room_id = %s AND author_id = %s AND client_msg_id = %s)"] * len(keys)
        )
        rows = self.rows(
            f"SELECT room_id, author_id, client_msg_id, id, seq FROM {_MESSAGES} WHERE {condition}",
            [value for key in keys for value in key],
        )
        return {(row[0], row[1], row[2]): (row[3], row[4]) for row in rows}

    def last_posts(self, pairs: set[tuple[int, int]]) -> dict[tuple[int, int], datetime]:
        if not pairs:
            return {}
        ordered = sorted(pairs)
        rows = self.rows(
            f"SELECT room_id, author_id, MAX(created_at) FROM {_MESSAGES} "
            f"WHERE {_pairs('room_id', 'author_id', len(ordered))} GROUP BY room_id, author_id",
            [value for pair in ordered for value in pair],
        )
        return {(row[0], row[1]): when for row in rows if (when := _aware(row[2])) is not None}

    def terms(self, community_ids: set[int]) -> dict[int, tuple[tuple[str, str], ...]]:
        if not community_ids:
            return {}
        ids = sorted(community_ids)
        return _terms_of(
            self.rows(
                f"SELECT community_id, term, action FROM {_TERMS} "
                f"WHERE community_id IN ({_marks(len(ids))}) ORDER BY community_id, term",
                ids,
            )
        )

    def parents(self) -> dict[int, int]:
        ids = sorted({s.reply_to for s in self.sends if s.reply_to is not None})
        if not ids:
            return {}
        rows = self.rows(
            f"SELECT id, room_id FROM {_MESSAGES} WHERE id IN ({_marks(len(ids))})", ids
        )
        return {row[0]: row[1] for row in rows}

    def named(
        self, names: set[str], community_ids: set[int]
    ) -> dict[tuple[int, str], tuple[int, str]]:
        if not names or not community_ids:
            return {}
        ordered, communities = sorted(names), sorted(community_ids)
        rows = self.rows(
            f"SELECT m.community_id, LOWER(u.username), u.id, m.role FROM {_USERS} u "
            f"JOIN {_MEMBERSHIPS} m ON m.user_id = u.id "
            f"WHERE LOWER(u.username) IN ({_marks(len(ordered))}) "
            f"AND m.community_id IN ({_marks(len(communities))})",
            [*ordered, *communities],
        )
        return {(row[0], row[1]): (row[2], row[3]) for row in rows}

    def take_ids(self, reads: _Reads, count: int) -> list[int] | None:
        """Message ids for ``count`` new messages, or None: the insert returns them."""
        return None

    def write(self, rows: list[_Row], heads: dict[int, int]) -> None:
        created_at = connection.ops.adapt_datetimefield_value(self.now)
        message_row = "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, NULL, 0)"
        messages = [
            (r.message_id, r.room_id, r.seq, r.seq, r.author_id, r.client_msg_id, r.body,
             r.reply_to, r.mentions, created_at)
            for r in rows
        ]  # fmt: skip
        events = [(r.room_id, r.seq, "message.new", r.payload.decode(), created_at) for r in rows]
        ids = sorted(heads)
        cases = " ".join(["WHEN %s THEN %s"] * len(ids))
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {_MESSAGES} (id, room_id, seq, event_seq, author_id, "
                f"client_msg_id, body, reply_to_id, mentions, created_at, edited_at, deleted) "
                f"VALUES {_marks(len(rows), message_row)}",
                [value for row in messages for value in row],
            )
            cursor.execute(
                f"INSERT INTO {_EVENTS} (room_id, seq, type, payload, created_at) "
                f"VALUES {_marks(len(rows), '(%s, %s, %s, %s, %s)')}",
                [value for row in events for value in row],
            )
            cursor.execute(
                f"UPDATE {_ROOMS} SET head_seq = CASE id {cases} END "
                f"WHERE id IN ({_marks(len(ids))})",
                [*(value for room_id in ids for value in (room_id, heads[room_id])), *ids],
            )


class _PgBatch(_Batch):
    """PostgreSQL: three statements per batch whatever its size: one reads everything the
    checks need while it locks the rooms, one writes the messages, their events and the
    rooms' heads, then the commit. Each statement's text is the same for every batch (arrays,
    not lists of placeholders), so it is prepared once per connection (``prepare=True``:
    Django leaves psycopg's automatic preparing off) and planned once.

    The read is one statement, so it reads with one snapshot, taken before it waited for the
    rooms' locks. What another writer committed meanwhile shows in the locked rows (their
    latest version) but not in the rest: when a locked room's head or access version differs
    from the snapshot's, the read runs again, now holding the locks, so a twin stored by
    another process or a ban that landed meanwhile is seen before anything is decided."""

    def read(self) -> _Reads:
        import psycopg

        raw = connection.connection
        sends = self.sends
        pairs = sorted({(s.room_id, s.author_id) for s in sends})
        keys = sorted({(s.room_id, s.author_id, s.client_msg_id) for s in sends})
        params = {
            "rooms": sorted({s.room_id for s in sends}),
            "pair_rooms": [p[0] for p in pairs],
            "pair_users": [p[1] for p in pairs],
            "key_rooms": [k[0] for k in keys],
            "key_users": [k[1] for k in keys],
            "keys": [k[2] for k in keys],
            "names": sorted(set().union(*(mention_names(s.body) for s in sends))),
            "parents": sorted({s.reply_to for s in sends if s.reply_to is not None}),
            "count": len(sends),
        }
        with psycopg.Cursor(raw) as cursor:
            for _attempt in range(3):
                cursor.execute(_PG_READ, params, prepare=True)
                row = cursor.fetchone()
                assert row is not None
                locked = row[0] or []
                if all(r[6] == r[2] and r[7] == r[3] for r in locked):
                    break
                params["count"] = 0  # ids were taken by the first attempt
                ids = row[8]
            else:  # pragma: no cover (a third change while the locks are held is impossible)
                raise OperationalError("the rooms changed under their locks")
        taken = row[8] if params["count"] else ids
        members, in_private, existing, last_posts, terms, parents, named = (
            value or [] for value in row[1:8]
        )
        return _Reads(
            rooms={r[0]: _Room(r[1], r[2], r[3], r[4], bool(r[5])) for r in locked},
            members={(r[0], r[1]): (r[2], _aware(r[3])) for r in members},
            in_private={(r[0], r[1]) for r in in_private},
            existing={(r[0], r[1], r[2]): (r[3], r[4]) for r in existing},
            last_posts={
                (r[0], r[1]): when for r in last_posts if (when := _aware(r[2])) is not None
            },
            terms=_terms_of(sorted(tuple(r) for r in terms)),
            parents={r[0]: r[1] for r in parents},
            named={(r[0], r[1]): (r[2], r[3]) for r in named},
            ids=sorted(taken or []),
        )

    def take_ids(self, reads: _Reads, count: int) -> list[int] | None:
        return reads.ids[:count]

    def write(self, rows: list[_Row], heads: dict[int, int]) -> None:
        import psycopg

        room_ids = sorted(heads)
        with psycopg.Cursor(connection.connection) as cursor:
            cursor.execute(
                _PG_WRITE,
                {
                    "now": self.now,
                    "ids": [r.message_id for r in rows],
                    "rooms": [r.room_id for r in rows],
                    "seqs": [r.seq for r in rows],
                    "authors": [r.author_id for r in rows],
                    "keys": [r.client_msg_id for r in rows],
                    "bodies": [r.body for r in rows],
                    "replies": [r.reply_to for r in rows],
                    "mentions": [r.mentions for r in rows],
                    "payloads": [r.payload.decode() for r in rows],
                    "head_rooms": room_ids,
                    "heads": [heads[r] for r in room_ids],
                },
                prepare=True,
            )


# The writer connections whose session keeps generic plans (weakly held: a connection that
# closed is forgotten).
_tuned: weakref.WeakSet[Any] = weakref.WeakSet()


def _terms_of(rows: Iterable[tuple[Any, ...]]) -> dict[int, tuple[tuple[str, str], ...]]:
    found: dict[int, list[tuple[str, str]]] = {}
    for community_id, term, action in rows:
        found.setdefault(community_id, []).append((term, action))
    return {community: tuple(terms) for community, terms in found.items()}


def _agg(select: str) -> str:
    """A subquery's rows as one JSON array of arrays (an empty result: NULL)."""
    return f"(SELECT json_agg(json_build_array({select})"


_LAST_POST = (
    f"(SELECT MAX(m.created_at) FROM {_MESSAGES} m "
    f"WHERE m.room_id = p.room_id AND m.author_id = p.user_id)"
)

# One row: the locked rooms (with the snapshot's head and access version beside the locked
# row's), then memberships, private-room members, used idempotency keys, last posts in
# slow-mode rooms, automod terms, messages replied to, named users, and message ids taken.
_PG_READ = f"""
WITH locked AS (
  SELECT id, community_id, head_seq, access_version, slow_mode_s, private FROM {_ROOMS}
  WHERE id = ANY(%(rooms)s::bigint[]) ORDER BY id FOR UPDATE
), pairs AS (
  SELECT * FROM unnest(%(pair_rooms)s::bigint[], %(pair_users)s::bigint[]) AS p(room_id, user_id)
)
SELECT
 {
    _agg(
        "l.id, l.community_id, l.head_seq, l.access_version, l.slow_mode_s, l.private, "
        "r.head_seq, r.access_version"
    )
}) FROM locked l JOIN {_ROOMS} r ON r.id = l.id),
 {_agg("m.community_id, m.user_id, m.role, m.muted_until")}) FROM pairs p
   JOIN {_ROOMS} r ON r.id = p.room_id
   JOIN {_MEMBERSHIPS} m ON m.community_id = r.community_id AND m.user_id = p.user_id),
 {_agg("rm.room_id, rm.user_id")}) FROM {_ROOM_MEMBERS} rm
   WHERE rm.room_id = ANY(%(rooms)s::bigint[]) AND (rm.user_id = ANY(%(pair_users)s::bigint[])
   OR rm.user_id IN (SELECT id FROM {_USERS} WHERE cardinality(%(names)s::text[]) > 0
   AND LOWER(username) = ANY(%(names)s::text[])))),
 {_agg("m.room_id, m.author_id, m.client_msg_id, m.id, m.seq")})
   FROM unnest(%(key_rooms)s::bigint[], %(key_users)s::bigint[], %(keys)s::text[])
   AS k(room_id, author_id, key) JOIN {_MESSAGES} m ON m.room_id = k.room_id
   AND m.author_id = k.author_id AND m.client_msg_id = k.key),
 {_agg("p.room_id, p.user_id, " + _LAST_POST)}) FROM pairs p
   JOIN {_ROOMS} r ON r.id = p.room_id WHERE r.slow_mode_s > 0),
 {_agg("t.community_id, t.term, t.action")}) FROM {_TERMS} t WHERE t.community_id IN
   (SELECT community_id FROM {_ROOMS} WHERE id = ANY(%(rooms)s::bigint[]))),
 {_agg("m.id, m.room_id")}) FROM {_MESSAGES} m WHERE cardinality(%(parents)s::bigint[]) > 0
   AND m.id = ANY(%(parents)s::bigint[])),
 {_agg("m.community_id, LOWER(u.username), u.id, m.role")}) FROM {_USERS} u
   JOIN {_MEMBERSHIPS} m ON m.user_id = u.id WHERE cardinality(%(names)s::text[]) > 0
   AND LOWER(u.username) = ANY(%(names)s::text[])
   AND m.community_id IN (SELECT community_id FROM {_ROOMS} WHERE id = ANY(%(rooms)s::bigint[]))),
 (SELECT json_agg(nextval(pg_get_serial_sequence('{_MESSAGES}', 'id')))
   FROM generate_series(1, %(count)s::int))
"""

# The messages, their message.new events and the rooms' heads, in one statement.
_PG_WRITE = f"""
WITH messages AS (
  INSERT INTO {_MESSAGES} (id, room_id, seq, event_seq, author_id, client_msg_id, body,
    reply_to_id, mentions, created_at, edited_at, deleted)
  SELECT id, room_id, seq, seq, author_id, key, body, reply_to, mentions::jsonb,
    %(now)s::timestamptz, NULL, false
  FROM unnest(%(ids)s::bigint[], %(rooms)s::bigint[], %(seqs)s::bigint[],
    %(authors)s::bigint[], %(keys)s::text[], %(bodies)s::text[], %(replies)s::bigint[],
    %(mentions)s::text[]) AS t(id, room_id, seq, author_id, key, body, reply_to, mentions)
  RETURNING 1
), events AS (
  INSERT INTO {_EVENTS} (room_id, seq, type, payload, created_at)
  SELECT room_id, seq, 'message.new', payload::jsonb, %(now)s::timestamptz
  FROM unnest(%(rooms)s::bigint[], %(seqs)s::bigint[], %(payloads)s::text[])
    AS t(room_id, seq, payload)
  RETURNING 1
), heads AS (
  UPDATE {_ROOMS} AS r SET head_seq = t.head
  FROM unnest(%(head_rooms)s::bigint[], %(heads)s::bigint[]) AS t(id, head) WHERE r.id = t.id
  RETURNING 1
)
SELECT (SELECT count(*) FROM messages), (SELECT count(*) FROM events), (SELECT count(*) FROM heads)
"""


@dataclass(slots=True)
class _Accepted:
    index: int
    send: Send
    body: str
    mentions: tuple[int, ...]
    flags: list[str]
    seq: int = 0


def store_batch(sends: Sequence[Send]) -> list[Outcome]:
    """Store the sends in one transaction; one outcome per send, in order: a ``Stored`` or the
    error that refused it. Raises only when the transaction itself failed (nothing of the
    batch is stored then). Must run where a database connection may be used (the writer
    thread, or a caller's transaction)."""
    outcomes: list[Outcome | None] = [None] * len(sends)
    twins: dict[int, int] = {}
    with transaction.atomic():
        connection.ensure_connection()
        batch = _PgBatch(sends) if connection.vendor == "postgresql" else _Batch(sends)
        reads = batch.read()
        candidates = _check(batch, reads, outcomes, twins)
        # The rate is taken last, and only by sends that passed every other check.
        waits = take_message_rate([a.send.author_id for a in candidates])
        accepted: list[_Accepted] = []
        for candidate, wait in zip(candidates, waits, strict=True):
            if wait is not None:
                outcomes[candidate.index] = RateLimited(
                    "Too many messages; slow down.", retry_after=wait
                )
            else:
                accepted.append(candidate)
        items = _write(batch, reads, accepted, outcomes) if accepted else []
    for index, first in twins.items():
        stored = outcomes[first]
        if isinstance(stored, Stored):
            outcomes[index] = Stored(stored.message_id, stored.room_id, stored.seq, created=False)
        else:
            outcomes[index] = stored
    if items:
        _publish(items)
    return [outcome if outcome is not None else RuntimeError("no outcome") for outcome in outcomes]


def _check(
    batch: _Batch, reads: _Reads, outcomes: list[Outcome | None], twins: dict[int, int]
) -> list[_Accepted]:
    """Each send's checks, in arrival order, as a lone post makes them; the sends that passed
    (their outcome left None). ``twins``: a repeat within the batch -> its first."""
    rooms, in_private = reads.rooms, reads.in_private
    last_posts = dict(reads.last_posts)

    def can_read(room_id: int, room: _Room, user_id: int, role: str) -> bool:
        return not room.private or role in _ADMIN_ROLES or (room_id, user_id) in in_private

    candidates: list[_Accepted] = []
    first_of: dict[tuple[int, int, str], int] = {}
    for index, send in enumerate(batch.sends):
        room = rooms.get(send.room_id)
        membership = reads.members.get((room.community_id, send.author_id)) if room else None
        if room is None or membership is None:
            outcomes[index] = NotFound("No such room.")
            continue
        role, muted_until = membership
        if not can_read(send.room_id, room, send.author_id, role):
            outcomes[index] = NotFound("No such room.")
            continue
        key = (send.room_id, send.author_id, send.client_msg_id)
        if key in reads.existing:
            message_id, seq = reads.existing[key]
            outcomes[index] = Stored(message_id, send.room_id, seq, created=False)
            continue
        if key in first_of:  # the same send twice in one batch: one message, two answers
            twins[index] = first_of[key]
            continue
        try:
            body = clean_body(send.body)
            if muted_until is not None and muted_until > batch.now:
                raise Muted("You are muted in this community.")
            if room.slow_mode_s and not at_least(role, Role.MODERATOR):
                _slow_mode(room, last_posts.get((send.room_id, send.author_id)), batch.now)
            flags = automod_check(reads.terms.get(room.community_id, ()), body)
            if send.reply_to is not None and reads.parents.get(send.reply_to) != send.room_id:
                raise Invalid(
                    "reply_to is not a message of this room.",
                    fields={"reply_to": ["Not a message of this room."]},
                )
        except ApplicationError as exc:
            outcomes[index] = exc
            continue
        mentioned = sorted(
            {
                user
                for name in mention_names(body)
                if (found := reads.named.get((room.community_id, name))) is not None
                and can_read(send.room_id, room, (user := found[0]), found[1])
            }
        )
        if room.slow_mode_s:  # a second post in this batch meets the first
            last_posts[(send.room_id, send.author_id)] = batch.now
        first_of[key] = index  # a refused send's twin is checked on its own, as if alone
        candidates.append(_Accepted(index, send, body, tuple(mentioned), flags))
    return candidates


def _slow_mode(room: _Room, last: datetime | None, now: datetime) -> None:
    if last is None:
        return
    wait = (last + timedelta(seconds=room.slow_mode_s) - now).total_seconds()
    if wait > 0:
        raise RateLimited(
            f"Slow mode: one message every {room.slow_mode_s} s.",
            code="slow_mode",
            retry_after=wait,
        )


def _write(
    batch: _Batch, reads: _Reads, accepted: list[_Accepted], outcomes: list[Outcome | None]
) -> list[Any]:
    """Seqs, the inserts, the heads; returns the fan-out items of the batch's events."""
    from chat.links import urls_in
    from fanout.items import RoomItem

    rooms = reads.rooms
    heads: dict[int, int] = {}
    for a in accepted:
        room = rooms[a.send.room_id]
        room.head_seq += 1
        a.seq = heads[a.send.room_id] = room.head_seq
    ids = batch.take_ids(reads, len(accepted))
    if ids is None:  # the backend has no sequence to take from ahead: insert, then read them
        ids = _insert_for_ids(batch, accepted)
    created = batch.now.isoformat().replace("+00:00", "Z")
    rows: list[_Row] = []
    items: list[Any] = []
    reports: list[Report] = []
    for a, message_id in zip(accepted, ids, strict=True):
        s = a.send
        payload = _json.encode(
            {
                "message": {
                    "id": message_id,
                    "room": s.room_id,
                    "seq": a.seq,
                    "event_seq": a.seq,
                    "author": {"id": s.author_id, "username": s.author_name},
                    "body": a.body,
                    "reply_to": s.reply_to,
                    "mentions": list(a.mentions),
                    "reactions": [],
                    "created_at": created,
                    "edited_at": None,
                    "deleted": False,
                }
            }
        )
        rows.append(
            _Row(
                message_id, s.room_id, a.seq, s.author_id, s.client_msg_id, a.body, s.reply_to,
                _json.encode(list(a.mentions)).decode(), payload,
            )
        )  # fmt: skip
        # The frame is the payload with its type, room and seq in front: encoded once.
        frame = b'{"type":"message.new","room":%d,"seq":%d,%s' % (s.room_id, a.seq, payload[1:])
        room = rooms[s.room_id]
        urls = tuple(urls_in(a.body)) if "." in a.body else ()
        items.append(
            RoomItem(
                s.room_id, a.seq, frame, None, room.community_id, urls,
                access_version=room.access_version,
            )
        )  # fmt: skip
        outcomes[a.index] = Stored(
            message_id, s.room_id, a.seq, True, a.body, s.reply_to, a.mentions, batch.now
        )
        if a.flags:
            reason = "automod: " + ", ".join(a.flags)
            reports.append(Report(message_id=message_id, reporter=None, reason=reason))
    batch.write(rows, heads)
    if reports:  # rare (a flag term): the ORM is fine here
        Report.objects.bulk_create(reports)
    return items


def _insert_for_ids(batch: _Batch, accepted: list[_Accepted]) -> list[int]:
    """Where ids cannot be taken ahead (SQLite): the next ids after the table's highest,
    under the write lock every SQLite transaction here takes (``transaction_mode``
    IMMEDIATE), so no other writer can take them meanwhile."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = %s), 0), "
            f"COALESCE((SELECT MAX(id) FROM {_MESSAGES}), 0))",
            [_MESSAGES],
        )
        top = int(cursor.fetchone()[0])
    return list(range(top + 1, top + 1 + len(accepted)))


def _publish(items: list[Any]) -> None:
    """Hand the committed batch's events to the fan-out tier, in commit order, at once."""
    from fanout import publish

    def go() -> None:
        many = getattr(publish, "publish_room_events", None)
        if many is not None:
            many(items)
            return
        for item in items:
            publish.publish_room_event(
                room_id=item.room_id,
                seq=item.seq,
                frame=item.frame,
                community_id=item.community_id,
                urls=item.urls,
                access_version=item.access_version,
            )

    transaction.on_commit(go)


# --- the thread -------------------------------------------------------------------------------


class Writer:
    """The process's writer thread. ``submit`` may be called from any thread."""

    def __init__(self, batch_max: int, linger_s: float) -> None:
        self.batch_max = batch_max
        self.linger_s = linger_s
        self.queue: queue.SimpleQueue[Send | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name="sphere-writer", daemon=True)
        self.last_size = 0
        self.observe: Callable[[Send], None] = _observe
        self.thread.start()

    def submit(self, send: Send) -> Future[Stored]:
        future: Future[Stored] = Future()
        send.future = future
        self.queue.put(send)
        return future

    def stop(self, timeout: float = 5.0) -> None:
        self.queue.put(None)
        self.thread.join(timeout)

    def _take(self) -> list[Send] | None:
        first = self.queue.get()
        if first is None:
            return None
        batch = [first]
        # Under load (the last batch had company), wait a moment for more: fewer, fuller
        # transactions. A lone send at a quiet time goes at once.
        deadline = time.monotonic() + self.linger_s if self.last_size > 1 else 0.0
        while len(batch) < self.batch_max:
            try:
                timeout = deadline - time.monotonic()
                send = self.queue.get(timeout=timeout) if timeout > 0 else self.queue.get_nowait()
            except queue.Empty:
                break
            if send is None:
                self.queue.put(None)  # stop after this batch
                break
            batch.append(send)
        self.last_size = len(batch)
        return batch

    def _run(self) -> None:
        try:
            while (batch := self._take()) is not None:
                self._store(batch)
        finally:
            connection.close()

    def _store(self, batch: list[Send]) -> None:
        try:
            _tune()
            outcomes = store_batch(batch)
        except Exception as exc:
            _recover(exc)
            # One message at a time: a bad one fails alone, its neighbours are stored.
            outcomes = []
            for send in batch:
                try:
                    _tune()
                    outcomes.extend(store_batch([send]))
                except Exception as alone:
                    _recover(alone)
                    logger.warning("writer: a message could not be stored (%s)",
                                   type(alone).__name__)  # fmt: skip
                    outcomes.append(alone)
        for send, outcome in zip(batch, outcomes, strict=True):
            future = send.future
            if future is None or future.done():
                continue
            if isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
            self.observe(send)


def _tune() -> None:
    """The writer's own connection (PostgreSQL) plans its statements once and keeps the plans:
    each is a few index look-ups whatever the arrays hold, and planning it every time would
    cost more than running it. A plan kept from when the tables were small must not scan them
    whole once they have grown, hence no sequential scans for this connection. Set once per
    connection, outside any transaction (a rollback would undo it)."""
    if connection.vendor != "postgresql":
        return
    connection.ensure_connection()
    raw = connection.connection
    if raw in _tuned:
        return
    with connection.cursor() as cursor:
        cursor.execute("SET plan_cache_mode = force_generic_plan")
        cursor.execute("SET enable_seqscan = off")
    _tuned.add(raw)


def _recover(exc: Exception) -> None:
    """After a failed transaction: a connection that broke is closed (the next batch opens a
    new one)."""
    if isinstance(exc, OperationalError | InterfaceError) or (
        isinstance(exc, DatabaseError) and connection.connection is not None and
        not connection.is_usable()
    ):  # fmt: skip
        connection.close()


def _observe(send: Send) -> None:
    """From the send's arrival to its answer: ``sphere_send_seconds`` and the slowest rooms'
    ``sphere_room_send_seconds`` (docs/operations.md)."""
    from fanout.metrics import observe_send

    observe_send(send.room_id, time.monotonic() - send.arrived)


_writer: Writer | None = None
_lock = threading.Lock()


def writer() -> Writer:
    """The process's writer, started on first use."""
    global _writer
    current = _writer
    if current is not None and current.thread.is_alive():
        return current
    with _lock:
        if _writer is None or not _writer.thread.is_alive():
            _writer = Writer(settings.WRITER_BATCH, settings.WRITER_LINGER_MS / 1000)
        return _writer


def stop_writer() -> None:
    """Stop the writer (its connection closes); the next send starts a new one."""
    global _writer
    with _lock:
        current, _writer = _writer, None
    if current is not None:
        current.stop()


def submit(send: Send) -> Future[Stored]:
    """Store ``send``: through the writer thread, or at once in the caller's transaction when
    there is one (the send then commits, or not, with it)."""
    if connection.in_atomic_block:
        future: Future[Stored] = Future()
        send.future = future
        try:
            outcome = store_batch([send])[0]
        except Exception as exc:
            outcome = exc
        if isinstance(outcome, Exception):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
        return future
    return writer().submit(send)
