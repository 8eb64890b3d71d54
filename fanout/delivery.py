"""Exactly-once, in-order delivery of room events to one connection.

Live events arrive from the partitions in publish order, which per room is commit order but may
skip (an event published by another process that this one missed) or repeat (a redelivery).
A connection keeps, per room, the last seq it has written: it drops what it has already
written, writes the next seq at once, and fills a gap from the database before writing what
came after it. Replays (``sync``) use the same cursor, so replayed and live events interleave
into one increasing sequence. Where a gap cannot be filled, the room is paused and the client is
told with ``room.resync``. Every read from the database first checks that the user can still
read the room; where it cannot, the room is revoked on the connection instead.

Live events that arrive while a replay or fill runs wait in a bounded buffer; past the bound
they are let go and fetched from the database once the work ends, so a slow client costs the
process no more than the bound.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from channels.db import database_sync_to_async

from fanout import metrics
from fanout.hooks import StoredEvent, hooks

logger = logging.getLogger(__name__)

REPLAY_PAGE = 500
HELD_MAX = 256  # live events kept per room while a replay or fill runs
LIVE = metrics.DELIVERIES.labels("live")
FILLED = metrics.DELIVERIES.labels("fill")
REPLAYED = metrics.DELIVERIES.labels("replay")
ResyncFrame = Callable[[int, int], bytes]


class Revoked(Exception):
    """The user can no longer read the room."""


@dataclass
class RoomCursor:
    last: int
    busy: bool = False  # a replay or gap fill is running: live events wait in ``held``
    again: bool = False  # a catch-up was asked for while busy: run it when the work ends
    held: dict[int, bytes] = field(default_factory=dict)


class Delivery:
    """Per-connection room cursors of ``user_id``'s connection. ``write`` hands a frame to the
    connection's outbound queue; ``resync_frame(room, from_seq)`` builds the ``room.resync``
    frame; ``revoked(room)`` is called when a read from the database finds that the user can
    no longer read the room (the connection revokes it)."""

    def __init__(
        self,
        write: Callable[[bytes], None],
        resync_frame: ResyncFrame,
        drain: Callable[[], Awaitable[None]] | None = None,
        *,
        user_id: int = 0,
        revoked: Callable[[int], None] | None = None,
    ) -> None:
        self.write = write
        self.resync_frame = resync_frame
        self.drain = drain
        self.user_id = user_id
        self.revoked = revoked
        self.rooms: dict[int, RoomCursor] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    # --- live ---------------------------------------------------------------------------------

    def offer(self, room_id: int, seq: int, frame: bytes) -> bool:
        """Take a live event; True when it was written at once (the caller counts those, a
        batch at a time)."""
        cursor = self.rooms.get(room_id)
        if cursor is None:
            return False  # a room not (or no longer) live here
        last = cursor.last
        if seq == last + 1 and not cursor.busy:
            cursor.last = seq
            self.write(frame)
            return True
        if seq <= last:
            metrics.DUPLICATES.inc()
        elif cursor.busy:
            self._hold(cursor, seq, frame)
        else:
            cursor.held[seq] = frame
            self._spawn(self._fill(room_id, cursor, upto=seq - 1))
        return False

    def _hold(self, cursor: RoomCursor, seq: int, frame: bytes) -> None:
        if len(cursor.held) >= HELD_MAX:
            # The database has them: let them go and catch up once the work ends.
            cursor.held.clear()
            cursor.again = True
            return
        cursor.held[seq] = frame

    def stop(self, room_id: int) -> None:
        """Forget the room: nothing more of it is written (revocation, pause)."""
        self.rooms.pop(room_id, None)

    def start_live(self, room_id: int, after_seq: int) -> None:
        """Deliver the room live from ``after_seq + 1`` (a room gained while connected)."""
        if room_id not in self.rooms:
            self.rooms[room_id] = RoomCursor(last=after_seq)

    def catch_up(self, room_id: int) -> None:
        """Fetch whatever the store holds after the room's cursor (a room just started live
        may have missed an event handed over just before)."""
        cursor = self.rooms.get(room_id)
        if cursor is None:
            return
        if cursor.busy:
            cursor.again = True  # what the running work read may predate the loss
            return
        self._spawn(self._fill(room_id, cursor, upto=cursor.last + REPLAY_PAGE, more=True))

    def _after_work(self, room_id: int, cursor: RoomCursor) -> None:
        if cursor.again and not cursor.busy and self.rooms.get(room_id) is cursor:
            cursor.again = False
            self._spawn(self._fill(room_id, cursor, upto=cursor.last + REPLAY_PAGE, more=True))

    # --- replay and gap filling --------------------------------------------------------------

    async def replay(self, room_id: int, after_seq: int) -> int:
        """Write every stored event of the room after ``after_seq``, then continue live.
        A room already live here resumes from what it has written, never before it (each
        event at most once). Returns the last seq written."""
        cursor = self.rooms.get(room_id)
        if cursor is None:
            cursor = self.rooms[room_id] = RoomCursor(last=after_seq)
        cursor.last, cursor.busy = max(cursor.last, after_seq), True
        try:
            while True:
                page = await _events_after(room_id, cursor.last, REPLAY_PAGE, self.user_id)
                for event in page:
                    if self.rooms.get(room_id) is not cursor:
                        break  # revoked while the store was read or the client caught up
                    if event.seq == cursor.last + 1:
                        self.write(event.frame)
                        cursor.last = event.seq
                        REPLAYED.inc()
                        if self.drain is not None:
                            await self.drain()  # a catching-up client sets the pace
                if len(page) < REPLAY_PAGE or self.rooms.get(room_id) is not cursor:
                    break
        except Revoked:
            self._revoke(room_id, cursor)
            return cursor.last
        finally:
            cursor.busy = False
        self._release(room_id, cursor)
        self._after_work(room_id, cursor)
        return cursor.last

    async def _fill(
        self, room_id: int, cursor: RoomCursor, *, upto: int, more: bool = False
    ) -> None:
        """Write the stored events up to ``upto``; with ``more``, page on while pages are
        full (a catch-up of unknown length)."""
        if cursor.busy:
            return
        cursor.busy = True
        start = cursor.last
        try:
            missing = await database_sync_to_async(
                hooks.store.events_between, thread_sensitive=False
            )(room_id, cursor.last, upto, self.user_id)
            if missing is None:
                cursor.busy = False
                self._revoke(room_id, cursor)
                return
            for event in missing:
                if self.rooms.get(room_id) is not cursor:
                    break  # revoked or paused while the store was read: write nothing more
                if event.seq == cursor.last + 1:
                    self.write(event.frame)
                    cursor.last = event.seq
                    FILLED.inc()
        except Exception:
            logger.exception("gap fill failed for room %s", room_id)
        finally:
            cursor.busy = False
        self._release(room_id, cursor, stuck=cursor.last == start)
        if more and cursor.last >= upto and self.rooms.get(room_id) is cursor:
            self._spawn(self._fill(room_id, cursor, upto=cursor.last + REPLAY_PAGE, more=True))
        else:
            self._after_work(room_id, cursor)

    def _revoke(self, room_id: int, cursor: RoomCursor) -> None:
        if self.rooms.get(room_id) is cursor:
            self.stop(room_id)
            if self.revoked is not None:
                self.revoked(room_id)

    def _release(self, room_id: int, cursor: RoomCursor, *, stuck: bool = False) -> None:
        """Write the held live events that now follow in order. A hole left behind is filled
        from the store; only a hole the store could not fill (``stuck``: the last fill made no
        progress) pauses the room and tells the client where to resume."""
        if self.rooms.get(room_id) is not cursor:
            return
        while cursor.held:
            lowest = min(cursor.held)
            if lowest <= cursor.last:
                del cursor.held[lowest]
            elif lowest == cursor.last + 1:
                self.write(cursor.held.pop(lowest))
                cursor.last = lowest
                LIVE.inc()
            elif stuck:
                self.stop(room_id)
                self.write(self.resync_frame(room_id, cursor.last + 1))
                metrics.RESYNCS.inc()
                return
            else:
                self._spawn(self._fill(room_id, cursor, upto=lowest - 1))
                return

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        self.rooms.clear()


async def _events_after(room_id: int, after: int, limit: int, user_id: int) -> list[StoredEvent]:
    events = await database_sync_to_async(hooks.store.events_between, thread_sensitive=False)(
        room_id, after, after + limit, user_id
    )
    if events is None:
        raise Revoked(room_id)
    return list(events)
