"""One batch in one transaction: the checks in arrival order, then the writes and the publish."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec
from django.db import connection, transaction

from chat.models import Report
from chat.services.limits import automod_check, take_message_rate
from chat.writer.sends import Send, Stored, _Room, _Root, clean_body, mention_names
from chat.writer.statements import (
    _MESSAGES,
    DM_ROLE,
    _Batch,
    _Extra,
    _PgBatch,
    _Reads,
    _Row,
    _Threads,
)
from communities.roles import Role, at_least
from sphere.errors import ApplicationError, Invalid, Muted, NotFound, RateLimited

_ADMIN_ROLES = (Role.OWNER.value, Role.ADMIN.value)
_json = msgspec.json.Encoder()
Outcome = Stored | Exception


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
        community_id = room.community_id if room is not None else None
        membership: tuple[str, datetime | None] | None = None
        if room is not None and community_id is None:  # a DM: its members post
            if (send.room_id, send.author_id) in in_private:
                membership = (DM_ROLE, None)
        elif community_id is not None:
            membership = reads.members.get((community_id, send.author_id))
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
                raise Muted(muted_until)
            if room.slow_mode_s and not at_least(role, Role.MODERATOR):
                _slow_mode(room, last_posts.get((send.room_id, send.author_id)), batch.now)
            flags = automod_check(reads.terms.get(room.community_id, ()), body)
            if send.reply_to is not None and reads.parents.get(send.reply_to) != send.room_id:
                raise Invalid(
                    "reply_to is not a message of this room.",
                    fields={"reply_to": ["Not a message of this room."]},
                )
            if send.thread_root is not None:
                _check_root(reads.roots.get(send.thread_root), send.room_id)
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


def _check_root(root: _Root | None, room_id: int) -> None:
    """A thread's root is a top-level message of the same room (docs/threads.md)."""
    if root is None or root.room_id != room_id:
        raise Invalid(
            "thread_root is not a message of this room.",
            fields={"thread_root": ["Not a message of this room."]},
        )
    if root.thread_root is not None:
        raise Invalid(
            "A reply cannot start a thread: reply in its root's thread.",
            fields={"thread_root": ["A reply in a thread; name its root instead."]},
        )


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
    threads = _Threads()
    thread_seqs: dict[int, int] = {}  # a reply's index -> the seq of its root's thread.updated
    for a in accepted:
        room = rooms[a.send.room_id]
        room.head_seq += 1
        a.seq = heads[a.send.room_id] = room.head_seq
        if a.send.thread_root is not None:  # its root's thread.updated follows it at once
            room.head_seq += 1
            thread_seqs[a.index] = heads[a.send.room_id] = room.head_seq
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
                    "thread_root": s.thread_root,
                    "thread": None,
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
                _json.encode(list(a.mentions)).decode(), payload, s.thread_root,
            )
        )  # fmt: skip
        # The frame is the payload with its type, room and seq in front: encoded once.
        frame = b'{"type":"message.new","room":%d,"seq":%d,%s' % (s.room_id, a.seq, payload[1:])
        room = rooms[s.room_id]
        # Link reach is counted per community: a DM's links are not.
        dm = room.community_id is None
        urls = tuple(urls_in(a.body)) if "." in a.body and not dm else ()
        items.append(
            RoomItem(
                s.room_id, a.seq, frame, None, room.community_id or 0, urls,
                access_version=room.access_version,
            )
        )  # fmt: skip
        outcomes[a.index] = Stored(
            message_id, s.room_id, a.seq, True, a.body, s.reply_to, a.mentions, batch.now,
            s.thread_root,
        )  # fmt: skip
        if s.thread_root is not None:
            items.append(
                _thread_updated(
                    threads, reads.roots[s.thread_root], s, a, thread_seqs[a.index], created,
                    room.access_version, room.community_id or 0,
                )
            )  # fmt: skip
        if a.flags:
            reason = "automod: " + ", ".join(a.flags)
            reports.append(Report(message_id=message_id, reporter=None, reason=reason))
    batch.write(rows, heads, threads)
    if reports:  # rare (a flag term): the ORM is fine here
        Report.objects.bulk_create(reports)
    return items


def _thread_updated(
    threads: _Threads,
    root: _Root,
    send: Send,
    accepted: _Accepted,
    seq: int,
    created: str,
    access_version: int,
    community_id: int,
) -> Any:
    """A reply's effects on its thread: the root's new summary and its ``thread.updated``
    event (at ``seq``), and the follows (docs/threads.md). Returns the event's fan-out item."""
    from fanout.items import RoomItem

    root_id = send.thread_root
    assert root_id is not None
    root.reply_count += 1
    if send.author_id not in root.participants:
        root.participants.append(send.author_id)
    threads.roots[root_id] = (root.reply_count, list(root.participants), seq)
    threads.forced.add((send.author_id, root_id))
    threads.joined.update((user, root_id) for user in accepted.mentions)
    if root.author_id is not None:
        threads.joined.add((root.author_id, root_id))
    payload = _json.encode(
        {
            "message_id": root_id,
            "thread": {
                "reply_count": root.reply_count,
                "last_reply_at": created,
                "participants": list(root.participants),
            },
        }
    )
    threads.events.append(_Extra(send.room_id, seq, "thread.updated", payload))
    frame = b'{"type":"thread.updated","room":%d,"seq":%d,%s' % (send.room_id, seq, payload[1:])
    return RoomItem(send.room_id, seq, frame, None, community_id, (), access_version=access_version)


def _insert_for_ids(batch: _Batch, accepted: list[_Accepted]) -> list[int]:
    """Where ids cannot be taken ahead (SQLite): the next ids after the table's highest,
    under the write lock every SQLite transaction here takes (``transaction_mode``
    IMMEDIATE), so no other writer can take them meanwhile."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = %s), 0), "  # noqa: S608 (a table name; the value is a parameter)
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
