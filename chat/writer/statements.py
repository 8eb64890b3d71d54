"""A batch's statements: plain SQL for any backend, and PostgreSQL's two statements per batch."""

# The statements below are put together from table names and counts of placeholders only:
# every value is a parameter.
# ruff: noqa: S608

from __future__ import annotations

import json
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.contrib.auth.models import User
from django.db import OperationalError, connection
from django.utils import timezone

from chat.models import BlockedTerm, Message, RoomEvent, ThreadFollow
from chat.writer.sends import Send, _Room, _Root, mention_names
from communities.models import Membership, Room, RoomMember

_MESSAGES = Message._meta.db_table
_EVENTS = RoomEvent._meta.db_table
_ROOMS = Room._meta.db_table
_MEMBERSHIPS = Membership._meta.db_table
_ROOM_MEMBERS = RoomMember._meta.db_table
_TERMS = BlockedTerm._meta.db_table
_FOLLOWS = ThreadFollow._meta.db_table
_USERS = User._meta.db_table
# What a DM member counts as in the checks (a DM has no roles; docs/dms.md).
DM_ROLE = "member"

# --- the statements ---------------------------------------------------------------------------


def _marks(count: int, mark: str = "%s") -> str:
    return ", ".join([mark] * count)


def _pairs(first: str, second: str, count: int) -> str:
    return " OR ".join([f"({first} = %s AND {second} = %s)"] * count)


def _id_list(value: Any) -> list[int]:
    """A JSON list of ids as a raw cursor reads it back (text on SQLite, a list on
    PostgreSQL)."""
    if isinstance(value, str):
        value = json.loads(value)
    return [int(v) for v in value or []]


def _json_ids(ids: list[int]) -> str:
    return json.dumps(ids, separators=(",", ":"))


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
    # community (None: the site's, for DMs) -> (term, action) pairs
    terms: dict[int | None, tuple[tuple[str, str], ...]]
    parents: dict[int, int]  # message replied to -> its room
    # (community, name) -> (user, role); (None, name) -> (user, DM_ROLE) when a DM is in the batch
    named: dict[tuple[int | None, str], tuple[int, str]]
    ids: list[int] = field(default_factory=list)  # message ids taken ahead (PostgreSQL)
    roots: dict[int, _Root] = field(default_factory=dict)  # thread roots named by the sends


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
    thread_root: int | None = None


@dataclass(slots=True)
class _Extra:
    """A room event a batch writes besides its messages' ``message.new``: a root's
    ``thread.updated`` (docs/threads.md)."""

    room_id: int
    seq: int
    type: str
    payload: bytes  # without type, room and seq


@dataclass(slots=True)
class _Threads:
    """What replies change besides their own rows: each root's summary (with the seq of its
    last ``thread.updated`` as its ``event_seq``), and follows: ``forced`` (repliers, who
    follow again even after unfollowing) and ``joined`` (the root's author and those
    mentioned, unless they chose to unfollow)."""

    roots: dict[int, tuple[int, list[int], int]] = field(default_factory=dict)
    forced: set[tuple[int, int]] = field(default_factory=set)  # (user, root)
    joined: set[tuple[int, int]] = field(default_factory=set)
    events: list[_Extra] = field(default_factory=list)


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
                roots=self.roots(),
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
            {
                (community_id, s.author_id)
                for s in self.sends
                if s.room_id in rooms and (community_id := rooms[s.room_id].community_id)
            }
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

    def terms(
        self, community_ids: set[int | None]
    ) -> dict[int | None, tuple[tuple[str, str], ...]]:
        ids = sorted(c for c in community_ids if c is not None)
        rows = []
        if ids:
            rows = self.rows(
                f"SELECT community_id, term, action FROM {_TERMS} "
                f"WHERE community_id IN ({_marks(len(ids))}) ORDER BY community_id, term",
                ids,
            )
        if None in community_ids:  # a DM: the site's terms
            rows += self.rows(
                f"SELECT community_id, term, action FROM {_TERMS} "
                "WHERE community_id IS NULL ORDER BY term",
                [],
            )
        return _terms_of(rows)

    def parents(self) -> dict[int, int]:
        ids = sorted({s.reply_to for s in self.sends if s.reply_to is not None})
        if not ids:
            return {}
        rows = self.rows(
            f"SELECT id, room_id FROM {_MESSAGES} WHERE id IN ({_marks(len(ids))})", ids
        )
        return {row[0]: row[1] for row in rows}

    def roots(self) -> dict[int, _Root]:
        ids = sorted({s.thread_root for s in self.sends if s.thread_root is not None})
        if not ids:
            return {}
        rows = self.rows(
            f"SELECT id, room_id, thread_root_id, thread_reply_count, thread_participants, "
            f"author_id FROM {_MESSAGES} WHERE id IN ({_marks(len(ids))})",
            ids,
        )
        return {row[0]: _Root(row[1], row[2], row[3], _id_list(row[4]), row[5]) for row in rows}

    def named(
        self, names: set[str], community_ids: set[int | None]
    ) -> dict[tuple[int | None, str], tuple[int, str]]:
        if not names or not community_ids:
            return {}
        ordered = sorted(names)
        communities = sorted(c for c in community_ids if c is not None)
        rows = []
        if communities:
            rows = self.rows(
                f"SELECT m.community_id, LOWER(u.username), u.id, m.role FROM {_USERS} u "
                f"JOIN {_MEMBERSHIPS} m ON m.user_id = u.id "
                f"WHERE LOWER(u.username) IN ({_marks(len(ordered))}) "
                f"AND m.community_id IN ({_marks(len(communities))})",
                [*ordered, *communities],
            )
        if None in community_ids:  # a DM: any user by name; the check keeps its members
            rows += self.rows(
                f"SELECT NULL, LOWER(u.username), u.id, %s FROM {_USERS} u "
                f"WHERE LOWER(u.username) IN ({_marks(len(ordered))})",
                [DM_ROLE, *ordered],
            )
        return {(row[0], row[1]): (row[2], row[3]) for row in rows}

    def take_ids(self, reads: _Reads, count: int) -> list[int] | None:
        """Message ids for ``count`` new messages, or None: the insert returns them."""
        return None

    def write(self, rows: list[_Row], heads: dict[int, int], threads: _Threads) -> None:
        created_at = connection.ops.adapt_datetimefield_value(self.now)
        message_row = "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, NULL, 0, %s, 0, NULL, '[]')"
        messages = [
            (r.message_id, r.room_id, r.seq, r.seq, r.author_id, r.client_msg_id, r.body,
             r.reply_to, r.mentions, created_at, r.thread_root)
            for r in rows
        ]  # fmt: skip
        events = [(r.room_id, r.seq, "message.new", r.payload.decode(), created_at) for r in rows]
        events += [
            (e.room_id, e.seq, e.type, e.payload.decode(), created_at) for e in threads.events
        ]
        ids = sorted(heads)
        cases = " ".join(["WHEN %s THEN %s"] * len(ids))
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {_MESSAGES} (id, room_id, seq, event_seq, author_id, "
                f"client_msg_id, body, reply_to_id, mentions, created_at, edited_at, deleted, "
                f"thread_root_id, thread_reply_count, thread_last_reply_at, thread_participants) "
                f"VALUES {_marks(len(rows), message_row)}",
                [value for row in messages for value in row],
            )
            cursor.execute(
                f"INSERT INTO {_EVENTS} (room_id, seq, type, payload, created_at) "
                f"VALUES {_marks(len(events), '(%s, %s, %s, %s, %s)')}",
                [value for row in events for value in row],
            )
            cursor.execute(
                f"UPDATE {_ROOMS} SET head_seq = CASE id {cases} END "
                f"WHERE id IN ({_marks(len(ids))})",
                [*(value for room_id in ids for value in (room_id, heads[room_id])), *ids],
            )
            for root_id, (count, participants, event_seq) in sorted(threads.roots.items()):
                cursor.execute(
                    f"UPDATE {_MESSAGES} SET thread_reply_count = %s, thread_last_reply_at = %s, "
                    f"thread_participants = %s, event_seq = %s WHERE id = %s",
                    [count, created_at, _json_ids(participants), event_seq, root_id],
                )
            for follows, on_conflict in (
                (threads.forced, "DO UPDATE SET following = 1"),  # SQLite's true
                (
                    threads.joined - threads.forced,
                    "DO UPDATE SET following = COALESCE(following, 1)",
                ),
            ):
                if follows:
                    cursor.execute(
                        f"INSERT INTO {_FOLLOWS} (user_id, root_id, following, read_seq, "
                        f"created_at) VALUES {_marks(len(follows), '(%s, %s, 1, 0, %s)')} "
                        f"ON CONFLICT (user_id, root_id) {on_conflict}",
                        [v for user, root in sorted(follows) for v in (user, root, created_at)],
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
            "roots": sorted({s.thread_root for s in sends if s.thread_root is not None}),
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
        terms = [*terms, *(row[9] or [])]  # the site's terms, for DMs
        named = [*named, *((None, r[0], r[1], DM_ROLE) for r in row[10] or [])]
        return _Reads(
            rooms={r[0]: _Room(r[1], r[2], r[3], r[4], bool(r[5])) for r in locked},
            members={(r[0], r[1]): (r[2], _aware(r[3])) for r in members},
            in_private={(r[0], r[1]) for r in in_private},
            existing={(r[0], r[1], r[2]): (r[3], r[4]) for r in existing},
            last_posts={
                (r[0], r[1]): when for r in last_posts if (when := _aware(r[2])) is not None
            },
            # By community (the site's, None, last) and term, as the plain read orders them.
            terms=_terms_of(sorted((tuple(r) for r in terms), key=_term_order)),
            parents={r[0]: r[1] for r in parents},
            named={(r[0], r[1]): (r[2], r[3]) for r in named},
            ids=sorted(taken or []),
            roots={r[0]: _Root(r[1], r[2], r[3], _id_list(r[4]), r[5]) for r in row[11] or []},
        )

    def take_ids(self, reads: _Reads, count: int) -> list[int] | None:
        return reads.ids[:count]

    def write(self, rows: list[_Row], heads: dict[int, int], threads: _Threads) -> None:
        import psycopg

        room_ids = sorted(heads)
        roots = sorted(threads.roots.items())
        forced = sorted(threads.forced)
        joined = sorted(threads.joined - threads.forced)
        events = threads.events
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
                    "thread_roots": [r.thread_root for r in rows],
                    "extra_rooms": [e.room_id for e in events],
                    "extra_seqs": [e.seq for e in events],
                    "extra_types": [e.type for e in events],
                    "extra_payloads": [e.payload.decode() for e in events],
                    "root_ids": [root for root, _ in roots],
                    "root_counts": [count for _, (count, _p, _s) in roots],
                    "root_participants": [_json_ids(p) for _, (_c, p, _s) in roots],
                    "root_seqs": [seq for _, (_c, _p, seq) in roots],
                    "forced_users": [user for user, _ in forced],
                    "forced_roots": [root for _, root in forced],
                    "joined_users": [user for user, _ in joined],
                    "joined_roots": [root for _, root in joined],
                    "head_rooms": room_ids,
                    "heads": [heads[r] for r in room_ids],
                },
                prepare=True,
            )


# The writer connections whose session keeps generic plans (weakly held: a connection that
# closed is forgotten).
_tuned: weakref.WeakSet[Any] = weakref.WeakSet()


def _terms_of(
    rows: Iterable[tuple[Any, ...]],
) -> dict[int | None, tuple[tuple[str, str], ...]]:
    found: dict[int | None, list[tuple[str, str]]] = {}
    for community_id, term, action in rows:
        found.setdefault(community_id, []).append((term, action))
    return {community: tuple(terms) for community, terms in found.items()}


def _term_order(row: tuple[Any, ...]) -> tuple[bool, int, str]:
    return row[0] is None, row[0] or 0, row[1]


def _agg(select: str) -> str:
    """A subquery's rows as one JSON array of arrays (an empty result: NULL)."""
    return f"(SELECT json_agg(json_build_array({select})"


_LAST_POST = (
    f"(SELECT MAX(m.created_at) FROM {_MESSAGES} m "
    f"WHERE m.room_id = p.room_id AND m.author_id = p.user_id)"
)

# One row: the locked rooms (with the snapshot's head and access version beside the locked
# row's), then memberships, private-room and DM members, used idempotency keys, last posts in
# slow-mode rooms, automod terms, messages replied to, named users, message ids taken, and,
# only when the batch holds a DM, the site's terms and the named users by name alone; then the
# thread roots its replies name.
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
   FROM generate_series(1, %(count)s::int)),
 {_agg("t.community_id, t.term, t.action")}) FROM {_TERMS} t WHERE t.community_id IS NULL
   AND EXISTS (SELECT 1 FROM {_ROOMS} WHERE id = ANY(%(rooms)s::bigint[])
   AND community_id IS NULL)),
 {_agg("LOWER(u.username), u.id")}) FROM {_USERS} u
   WHERE cardinality(%(names)s::text[]) > 0 AND LOWER(u.username) = ANY(%(names)s::text[])
   AND EXISTS (SELECT 1 FROM {_ROOMS} WHERE id = ANY(%(rooms)s::bigint[])
   AND community_id IS NULL)),
 {
    _agg(
        "m.id, m.room_id, m.thread_root_id, m.thread_reply_count, m.thread_participants, "
        "m.author_id"
    )
})
   FROM {_MESSAGES} m WHERE cardinality(%(roots)s::bigint[]) > 0
   AND m.id = ANY(%(roots)s::bigint[]))
"""

# The messages, their message.new events (and the thread.updated events of roots their replies
# changed), the rooms' heads, the roots' summaries and the thread follows, in one statement.
_PG_WRITE = f"""
WITH messages AS (
  INSERT INTO {_MESSAGES} (id, room_id, seq, event_seq, author_id, client_msg_id, body,
    reply_to_id, mentions, created_at, edited_at, deleted, thread_root_id, thread_reply_count,
    thread_last_reply_at, thread_participants)
  SELECT id, room_id, seq, seq, author_id, key, body, reply_to, mentions::jsonb,
    %(now)s::timestamptz, NULL, false, thread_root, 0, NULL, '[]'::jsonb
  FROM unnest(%(ids)s::bigint[], %(rooms)s::bigint[], %(seqs)s::bigint[],
    %(authors)s::bigint[], %(keys)s::text[], %(bodies)s::text[], %(replies)s::bigint[],
    %(mentions)s::text[], %(thread_roots)s::bigint[])
    AS t(id, room_id, seq, author_id, key, body, reply_to, mentions, thread_root)
  RETURNING 1
), events AS (
  INSERT INTO {_EVENTS} (room_id, seq, type, payload, created_at)
  SELECT room_id, seq, 'message.new', payload::jsonb, %(now)s::timestamptz
  FROM unnest(%(rooms)s::bigint[], %(seqs)s::bigint[], %(payloads)s::text[])
    AS t(room_id, seq, payload)
  UNION ALL
  SELECT room_id, seq, type, payload::jsonb, %(now)s::timestamptz
  FROM unnest(%(extra_rooms)s::bigint[], %(extra_seqs)s::bigint[], %(extra_types)s::text[],
    %(extra_payloads)s::text[]) AS t(room_id, seq, type, payload)
  RETURNING 1
), heads AS (
  UPDATE {_ROOMS} AS r SET head_seq = t.head
  FROM unnest(%(head_rooms)s::bigint[], %(heads)s::bigint[]) AS t(id, head) WHERE r.id = t.id
  RETURNING 1
), roots AS (
  UPDATE {_MESSAGES} AS m SET thread_reply_count = t.n, thread_last_reply_at = %(now)s,
    thread_participants = t.who::jsonb, event_seq = t.seq
  FROM unnest(%(root_ids)s::bigint[], %(root_counts)s::int[], %(root_participants)s::text[],
    %(root_seqs)s::bigint[]) AS t(id, n, who, seq)
  WHERE m.id = t.id
  RETURNING 1
), forced AS (
  INSERT INTO {_FOLLOWS} (user_id, root_id, following, read_seq, created_at)
  SELECT user_id, root_id, true, 0, %(now)s::timestamptz
  FROM unnest(%(forced_users)s::bigint[], %(forced_roots)s::bigint[]) AS t(user_id, root_id)
  ON CONFLICT (user_id, root_id) DO UPDATE SET following = true
  RETURNING 1
), joined AS (
  INSERT INTO {_FOLLOWS} (user_id, root_id, following, read_seq, created_at)
  SELECT user_id, root_id, true, 0, %(now)s::timestamptz
  FROM unnest(%(joined_users)s::bigint[], %(joined_roots)s::bigint[]) AS t(user_id, root_id)
  ON CONFLICT (user_id, root_id) DO UPDATE SET following = COALESCE({_FOLLOWS}.following, true)
  RETURNING 1
)
SELECT (SELECT count(*) FROM messages), (SELECT count(*) FROM events),
  (SELECT count(*) FROM heads), (SELECT count(*) FROM roots), (SELECT count(*) FROM forced),
  (SELECT count(*) FROM joined)
"""


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
