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
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from django.conf import settings
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


class _Batch:
    """One transaction's worth of sends, read and written with a raw cursor."""

    def __init__(self, cursor: Any, sends: Sequence[Send]) -> None:
        self.cursor = cursor
        self.sends = sends
        self.pg = connection.vendor == "postgresql"
        self.now = timezone.now()

    def rows(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        self.cursor.execute(sql, params)
        return list(self.cursor.fetchall())

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
        """(room, user) pairs of private rooms' members among these users."""
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
        """When each (room, author) pair last posted (slow-mode rooms only)."""
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
        rows = self.rows(
            f"SELECT community_id, term, action FROM {_TERMS} "
            f"WHERE community_id IN ({_marks(len(ids))}) ORDER BY community_id, term",
            ids,
        )
        found: dict[int, list[tuple[str, str]]] = {}
        for community_id, term, action in rows:
            found.setdefault(community_id, []).append((term, action))
        return {community: tuple(terms) for community, terms in found.items()}

    def parents(self) -> dict[int, int]:
        """Message id -> its room, for the messages replied to."""
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
        """(community, lower-case name) -> (user id, role) for the named members."""
        if not names or not community_ids:
            return {}
        users = connection.ops.quote_name("auth_user")
        ordered, communities = sorted(names), sorted(community_ids)
        rows = self.rows(
            f"SELECT m.community_id, LOWER(u.username), u.id, m.role FROM {users} u "
            f"JOIN {_MEMBERSHIPS} m ON m.user_id = u.id "
            f"WHERE LOWER(u.username) IN ({_marks(len(ordered))}) "
            f"AND m.community_id IN ({_marks(len(communities))})",
            [*ordered, *communities],
        )
        return {(row[0], row[1]): (row[2], row[3]) for row in rows}

    def insert_messages(self, accepted: list[_Accepted]) -> dict[tuple[int, int], int]:
        """The new messages; (room, seq) -> id."""
        json = "CAST(%s AS jsonb)" if self.pg else "%s"
        row = f"(%s, %s, %s, %s, %s, %s, %s, {json}, %s, NULL, %s)"
        created_at = connection.ops.adapt_datetimefield_value(self.now)
        params: list[Any] = []
        for a in accepted:
            s = a.send
            params += [
                s.room_id, a.seq, a.seq, s.author_id, s.client_msg_id, a.body, s.reply_to,
                _json.encode(list(a.mentions)).decode(), created_at, False,
            ]  # fmt: skip
        rows = self.rows(
            f"INSERT INTO {_MESSAGES} (room_id, seq, event_seq, author_id, client_msg_id, body, "
            f"reply_to_id, mentions, created_at, edited_at, deleted) "
            f"VALUES {_marks(len(accepted), row)} RETURNING id, room_id, seq",
            params,
        )
        return {(row[1], row[2]): row[0] for row in rows}

    def insert_events(self, events: list[tuple[int, int, bytes]]) -> None:
        """``message.new`` events: (room, seq, payload JSON)."""
        json = "CAST(%s AS jsonb)" if self.pg else "%s"
        row = f"(%s, %s, %s, {json}, %s)"
        created_at = connection.ops.adapt_datetimefield_value(self.now)
        params: list[Any] = []
        for room_id, seq, payload in events:
            params += [room_id, seq, "message.new", payload.decode(), created_at]
        self.cursor.execute(
            f"INSERT INTO {_EVENTS} (room_id, seq, type, payload, created_at) "
            f"VALUES {_marks(len(events), row)}",
            params,
        )

    def move_heads(self, heads: dict[int, int]) -> None:
        ids = sorted(heads)
        cases = " ".join(["WHEN %s THEN %s"] * len(ids))
        self.cursor.execute(
            f"UPDATE {_ROOMS} SET head_seq = CASE id {cases} END WHERE id IN ({_marks(len(ids))})",
            [*(value for room_id in ids for value in (room_id, heads[room_id])), *ids],
        )


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
    with transaction.atomic(), connection.cursor() as cursor:
        batch = _Batch(cursor, sends)
        rooms = batch.lock_rooms()
        members = batch.memberships(rooms)
        existing = batch.existing()
        names = [mention_names(s.body) for s in sends]
        communities = {room.community_id for room in rooms.values()}
        named = batch.named(set().union(*names), communities)
        private = {room_id for room_id, room in rooms.items() if room.private}
        in_private = batch.room_members(
            private, {s.author_id for s in sends} | {user for user, _ in named.values()}
        )
        slow = {
            (s.room_id, s.author_id)
            for s in sends
            if s.room_id in rooms and rooms[s.room_id].slow_mode_s
        }
        last_posts = batch.last_posts(slow)
        terms = batch.terms(communities)
        parents = batch.parents()

        def reads(room_id: int, room: _Room, user_id: int, role: str) -> bool:
            return not room.private or role in _ADMIN_ROLES or (room_id, user_id) in in_private

        candidates: list[_Accepted] = []
        first_of: dict[tuple[int, int, str], int] = {}
        twins: dict[int, int] = {}
        for index, send in enumerate(sends):
            room = rooms.get(send.room_id)
            membership = members.get((room.community_id, send.author_id)) if room else None
            if room is None or membership is None:
                outcomes[index] = NotFound("No such room.")
                continue
            role, muted_until = membership
            if not reads(send.room_id, room, send.author_id, role):
                outcomes[index] = NotFound("No such room.")
                continue
            key = (send.room_id, send.author_id, send.client_msg_id)
            if key in existing:
                message_id, seq = existing[key]
                outcomes[index] = Stored(message_id, send.room_id, seq, created=False)
                continue
            if key in first_of:  # the same send twice in one batch: one message, two answers
                twins[index] = first_of[key]
                continue
            first_of[key] = index
            try:
                body = clean_body(send.body)
                if muted_until is not None and muted_until > batch.now:
                    raise Muted("You are muted in this community.")
                if room.slow_mode_s and not at_least(role, Role.MODERATOR):
                    _slow_mode(room, last_posts.get((send.room_id, send.author_id)), batch.now)
                flags = automod_check(terms.get(room.community_id, ()), body)
                if send.reply_to is not None and parents.get(send.reply_to) != send.room_id:
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
                    if (found := named.get((room.community_id, name))) is not None
                    and reads(send.room_id, room, (user := found[0]), found[1])
                }
            )
            if room.slow_mode_s:  # a second post in this batch meets the first
                last_posts[(send.room_id, send.author_id)] = batch.now
            candidates.append(_Accepted(index, send, body, tuple(mentioned), flags))

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

        items = _write(batch, rooms, accepted, outcomes) if accepted else []
    for index, first in twins.items():
        stored = outcomes[first]
        if isinstance(stored, Stored):
            outcomes[index] = Stored(stored.message_id, stored.room_id, stored.seq, created=False)
        else:
            outcomes[index] = stored
    if items:
        _publish(items)
    return [outcome if outcome is not None else RuntimeError("no outcome") for outcome in outcomes]


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
    batch: _Batch,
    rooms: dict[int, _Room],
    accepted: list[_Accepted],
    outcomes: list[Outcome | None],
) -> list[Any]:
    """Seqs, the inserts, the heads; returns the fan-out items of the batch's events."""
    from chat.links import urls_in
    from fanout.items import RoomItem

    heads: dict[int, int] = {}
    for a in accepted:
        room = rooms[a.send.room_id]
        room.head_seq += 1
        a.seq = heads[a.send.room_id] = room.head_seq
    ids = batch.insert_messages(accepted)
    created = batch.now.isoformat().replace("+00:00", "Z")
    events: list[tuple[int, int, bytes]] = []
    items: list[Any] = []
    reports: list[Report] = []
    for a in accepted:
        s = a.send
        message_id = ids[(s.room_id, a.seq)]
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
        events.append((s.room_id, a.seq, payload))
        # The frame is the payload with its type, room and seq in front: encoded once.
        frame = b'{"type":"message.new","room":%d,"seq":%d,%s' % (s.room_id, a.seq, payload[1:])
        room = rooms[s.room_id]
        items.append(
            RoomItem(
                s.room_id,
                a.seq,
                frame,
                None,
                room.community_id,
                tuple(urls_in(a.body)) if "." in a.body else (),
                access_version=room.access_version,
            )
        )
        outcomes[a.index] = Stored(
            message_id, s.room_id, a.seq, True, a.body, s.reply_to, a.mentions, batch.now
        )
        if a.flags:
            reason = "automod: " + ", ".join(a.flags)
            reports.append(Report(message_id=message_id, reporter=None, reason=reason))
    batch.insert_events(events)
    batch.move_heads(heads)
    if reports:  # rare (a flag term): the ORM is fine here
        Report.objects.bulk_create(reports)
    return items


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
            outcomes = store_batch(batch)
        except Exception as exc:
            _recover(exc)
            # One message at a time: a bad one fails alone, its neighbours are stored.
            outcomes = []
            for send in batch:
                try:
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


def _recover(exc: Exception) -> None:
    """After a failed transaction: a connection that broke is closed (the next batch opens a
    new one)."""
    if isinstance(exc, OperationalError | InterfaceError) or (
        isinstance(exc, DatabaseError) and connection.connection is not None and
        not connection.is_usable()
    ):  # fmt: skip
        connection.close()


def _observe(send: Send) -> None:
    from fanout import metrics

    observe = getattr(metrics, "observe_send", None)
    if observe is not None:
        observe(send.room_id, time.monotonic() - send.arrived)


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
