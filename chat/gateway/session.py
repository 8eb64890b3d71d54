"""One connection's protocol state: the rooms it reads, and its client-frame handlers.

Every decision about a room's access on the connection is taken here: which rooms it may read
(``hello``, then ``room.added``/``room.removed``), whether an access change is newer than the
last one applied, where each room starts at the first ``sync``, and the room cursors of
``fanout.delivery.Delivery``. The consumer only forwards what the fan-out tier hands over and
writes what the session queues.

The handlers call the same services as REST, in a worker thread, and answer with ``ack`` or
``error`` carrying the frame's ``ref``. Room events start flowing at the first ``sync``
(docs/protocol.md, "Staying in step").
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable
from typing import Any, Literal, Protocol, cast

from django.conf import settings
from django.contrib.auth.models import User
from django.core.cache import cache

from chat import protocol as p
from chat.gateway.threads import in_thread
from chat.presence import online_among, presence_audience
from chat.selectors import message_get_for_reader, rooms_for_hello
from chat.services import messages as message_services
from chat.services import reactions as reaction_services
from chat.services.read_markers import read_marker_move
from chat.wire import user_dict
from chat.writer import Stored
from communities.events import room_info
from communities.models import Room
from communities.selectors import dm_members, room_get_for_reader
from communities.services.accounts import socket_refusal
from fanout import publish
from fanout.delivery import Delivery
from sphere.cache import cache_is_shared
from sphere.errors import ApplicationError, NotFound

logger = logging.getLogger(__name__)

# What the hub hands over before ``hello`` is queued: (kind, room, head_seq, frame, version),
# kind being "frame", "grant" or "revoke".
Held = tuple[str, int, int, bytes, int]


class Socket(Protocol):
    """What the session needs of its connection: the user, and the way out."""

    user: User

    def enqueue(self, frame: bytes) -> None:
        """Queue an encoded frame (dropped once the connection is closing)."""

    def send_now(self, frame: p.ServerFrame) -> None:
        """Encode and queue a server frame."""

    async def drain(self) -> None:
        """Return once the connection's unsent bytes are low enough for a replay to go on."""


class Refused(Exception):
    """The socket may not stay open: its account is disabled or its token revoked."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class Session:
    def __init__(self, socket: Socket) -> None:
        self.socket = socket
        self.user: User = socket.user
        # The reference of the token the socket's ticket was issued with ("" for a session).
        self.credential: str = getattr(socket, "credential", "")
        # Set when ``hello`` found the socket may not stay (a close code).
        self.refused: int | None = None
        self.readable: set[int] = set()
        self.hello_heads: dict[int, int] = {}
        # The access version of each room as last applied here (hello, room.added/removed):
        # an access item not newer than it is a redelivery or arrived late, and is dropped.
        self.access_versions: dict[int, int] = {}
        self.started = False
        self.typed_at: dict[int, float] = {}
        self.own_reads: set[bytes] = set()
        # Sends handed to the writer and not yet acknowledged (pipelined, docs/protocol.md).
        self.sending: set[asyncio.Future[None]] = set()
        # The connection attaches to the gateway before the rooms for hello are read; what the
        # hub hands over meanwhile waits here until hello is queued, and is then applied in
        # order: an access change in between is applied, not lost.
        self.held: list[Held] | None = []
        self.delivery = Delivery(
            socket.enqueue,
            self._resync_frame,
            drain=socket.drain,
            user_id=self.user.pk,
            revoked=self._revoked_by_store,
        )

    # --- connection lifecycle ---------------------------------------------------------------------

    async def send_hello(self, *, online: bool = False) -> None:
        """Queue ``hello``, then apply what the hub handed over since the connection attached.
        With ``online`` (the user comes online: docs/protocol.md, "Presence"), the user's
        presence audience hears of it, from the same trip to a worker thread as hello's rooms
        and ``online`` (who of that audience is connected: one registry call)."""
        try:
            hello = await in_thread(self._hello)(online)
        except Refused as refused:
            self.refused = refused.code
            return
        self.socket.enqueue(hello)
        held, self.held = self.held or [], None
        for kind, room_id, head_seq, frame, version in held:
            if kind == "revoke":
                self.revoke_room(room_id, frame, version)
            elif kind == "grant":
                self.grant_room(room_id, head_seq, frame, version)
            else:
                self.deliver_frame(frame)

    def _hello(self, online: bool) -> bytes:
        # The account and the socket's token, read again now that the socket is registered: a
        # disable or revocation that committed while it opened did not reach it as a close.
        refusal = socket_refusal(user_id=self.user.pk, credential=self.credential)
        if refusal is not None:
            raise Refused(refusal)
        rooms = self._rooms()
        self.readable = {room["id"] for room in rooms}
        self.hello_heads = {room["id"]: room["head_seq"] for room in rooms}
        audience = presence_audience(user_id=self.user.pk)
        if online:
            self._announce("online", audience)
        return p.encode(
            p.Hello(
                protocol=p.PROTOCOL,
                user=p.User(id=self.user.pk, username=self.user.username),
                heartbeat_s=settings.WS_HEARTBEAT_S,
                rooms=cast("list[p.Room]", rooms),  # room_info's dicts: the encoder takes them
                online=sorted(online_among(audience)) if audience else [],
            )
        )

    def _rooms(self) -> list[dict[str, Any]]:
        rooms = rooms_for_hello(user_id=self.user.pk)
        # Read in the same statement as who may read them: consistent with the rooms listed.
        self.access_versions = {room.pk: room.access_version for room, _ in rooms}
        dms = [room.pk for room, _ in rooms if room.community_id is None]
        members = dm_members(dms) if dms else {}
        return [room_info(room, unread, members.get(room.pk)) for room, unread in rooms]

    def close(self) -> None:
        self.delivery.close()

    async def presence(self, status: Literal["online", "offline"]) -> None:
        """Tell those sharing a room of at most PRESENCE_MAX_ROOM members that the user came
        online or went offline (docs/protocol.md, "Presence")."""
        await in_thread(self._announce)(status)

    def _announce(
        self, status: Literal["online", "offline"], audience: set[int] | None = None
    ) -> None:
        if audience is None:
            audience = presence_audience(user_id=self.user.pk)
        if audience:
            frame = p.encode(
                p.Presence(user=p.User(id=self.user.pk, username=self.user.username), status=status)
            )
            publish.publish_to_users(user_ids=sorted(audience), frame=frame)

    # --- what the fan-out tier hands over (fanout.hooks.Connection) -------------------------------

    def deliver_frame(self, frame: bytes) -> None:
        if self.held is not None:
            self.held.append(("frame", 0, 0, frame, 0))
        elif self._accepts_ephemeral(frame):
            self.socket.enqueue(frame)

    def revoke_room(self, room_id: int, frame: bytes, version: int = 0) -> None:
        if self.held is not None:
            self.held.append(("revoke", room_id, 0, frame, version))
            return
        if not self._access_news(room_id, version):
            return  # a redelivered or late item: a newer change (or hello) is applied already
        self.delivery.stop(room_id)
        self._lose_room(room_id)
        self.socket.enqueue(frame)

    def grant_room(self, room_id: int, head_seq: int, frame: bytes, version: int = 0) -> None:
        if self.held is not None:
            self.held.append(("grant", room_id, head_seq, frame, version))
            return
        if not self._access_news(room_id, version):
            return
        self._gain_room(room_id, head_seq)
        self.socket.enqueue(frame)
        if self.started:
            self.delivery.start_live(room_id, head_seq)
            # An event of the room handled before this grant was dropped here: fetch it.
            self.delivery.catch_up(room_id)

    def recover(self) -> None:
        if self.held is None and self.started:
            for room_id in list(self.delivery.rooms):
                self.delivery.catch_up(room_id)

    def _revoked_by_store(self, room_id: int) -> None:
        """A read from the database found the room no longer readable (its ``room.removed``
        never came, or is still on its way): stop it here and say so."""
        self._lose_room(room_id)
        self.socket.send_now(p.RoomRemoved(room=room_id, reason="removed"))

    def _resync_frame(self, room_id: int, from_seq: int) -> bytes:
        return p.encode(p.RoomResync(room=room_id, from_seq=from_seq))

    def _access_news(self, room_id: int, version: int) -> bool:
        """Whether an access change of ``version`` is newer than what this connection has
        applied for the room; if so it becomes the room's version here. Version 0: unknown,
        always applied."""
        if version and version <= self.access_versions.get(room_id, 0):
            return False
        if version:
            self.access_versions[room_id] = version
        return True

    def _gain_room(self, room_id: int, head_seq: int) -> None:
        self.readable.add(room_id)
        # Before the first sync, a gained room starts after its head like a room of hello.
        self.hello_heads[room_id] = head_seq

    def _lose_room(self, room_id: int) -> None:
        self.readable.discard(room_id)

    def _accepts_ephemeral(self, frame: bytes) -> bool:
        """``read`` goes to the user's other connections: drop the echo of our own."""
        if frame in self.own_reads:
            self.own_reads.discard(frame)
            return False
        return True

    # --- client frames ----------------------------------------------------------------------------

    async def handle(self, frame: p.AnyClientFrame) -> None:
        if isinstance(frame, p.MessageSend):
            # Pipelined: handed to the writer now (so this connection's sends keep their
            # order), acknowledged when stored, while the next frames are read.
            self._send(frame)
            return
        self.socket_answer(frame, await self._answer(frame, self._dispatch(frame)))

    async def _answer(self, frame: p.AnyClientFrame, work: Awaitable[Any]) -> Any:
        """What ``work`` answers, or the ``error`` frame for what it raised."""
        try:
            return await work
        except ApplicationError as exc:
            return p.Error(
                code=exc.code,
                message=exc.message,
                ref=frame.ref,
                retry_after=round(exc.retry_after, 3) if exc.retry_after else None,
                muted_until=getattr(exc, "muted_until", None),
            )
        except Exception:  # a bug must not cost the connection: log it, answer, go on
            logger.exception("gateway: %s frame failed", type(frame).__name__)
            return p.Error(
                code="internal", message="The server failed to handle this frame.", ref=frame.ref
            )

    def socket_answer(self, frame: p.AnyClientFrame, answer: Any) -> None:
        if answer is not None:
            self.socket.send_now(answer)

    async def _dispatch(self, frame: p.AnyClientFrame) -> Any:
        match frame:
            case p.Ping():
                return p.Pong(ref=frame.ref)
            case p.Sync():
                return await self._sync(frame)
            case p.Typing():
                await self._typing(frame)
                return None
            case p.Read():
                seq = await in_thread(self._read)(frame)
                return p.Ack(ref=frame.ref, room=frame.room, seq=seq)
            case p.MessageSend():  # pipelined by ``handle``, never dispatched
                raise AssertionError("message.send is handled by _send")
            case _:
                seq = await in_thread(self._message_act)(frame)
                return p.Ack(ref=frame.ref, message_id=frame.message_id, seq=seq)

    def _room(self, room_id: int) -> Room:
        if room_id not in self.readable:
            raise NotFound("No such room.")
        return room_get_for_reader(user=self.user, room_id=room_id)

    def _send(self, frame: p.MessageSend) -> None:
        """Hand the send to the group-commit writer at once, with no query here: the writer
        checks membership, mutes and the rest in its batch (docs/protocol.md, "Sending")."""
        if len(self.sending) >= settings.WS_MAX_INFLIGHT:
            self.socket.send_now(
                p.Error(
                    code="rate_limited",
                    message="Too many sends awaiting their ack; wait for some.",
                    ref=frame.ref,
                    retry_after=0.1,
                )
            )
            return
        try:
            # Not ``self.readable``: a room the user gained a moment ago (a DM just opened)
            # may reach this connection's list after the user's first send to it. The writer
            # checks who may post under the room's lock, for every send.
            future = message_services.message_submit(
                actor=self.user,
                room_id=frame.room,
                body=frame.body,
                client_msg_id=frame.client_msg_id,
                reply_to=frame.reply_to,
                thread_root=frame.thread_root,
            )
        except ApplicationError as exc:
            self.socket.send_now(p.Error(code=exc.code, message=exc.message, ref=frame.ref))
            return
        task = asyncio.ensure_future(self._ack(frame, asyncio.wrap_future(future)))
        self.sending.add(task)
        task.add_done_callback(self.sending.discard)

    async def _ack(self, frame: p.MessageSend, stored: Awaitable[Stored]) -> None:
        async def ack() -> p.Ack:
            done = await stored
            return p.Ack(
                ref=frame.ref,
                client_msg_id=frame.client_msg_id,
                message_id=done.message_id,
                seq=done.seq,
            )

        self.socket_answer(frame, await self._answer(frame, ack()))

    def _read(self, frame: p.Read) -> int:
        room = self._room(frame.room)
        # Known before the marker moves: its ``read`` may come back before this returns.
        echo = p.encode(p.ReadEvent(room=room.pk, seq=frame.seq))
        self.own_reads.add(echo)
        try:
            marker = read_marker_move(actor=self.user, room=room, seq=frame.seq)
        except BaseException:  # refused (e.g. rate_limited): no echo of it is coming
            self.own_reads.discard(echo)
            raise
        if marker.seq != frame.seq:  # clamped to the head, or already further
            self.own_reads.discard(echo)
            self.own_reads.add(p.encode(p.ReadEvent(room=room.pk, seq=marker.seq)))
        return marker.seq

    def _message_act(self, frame: Any) -> int:
        """Edit, delete or react; returns the room's head seq after the act."""
        message = message_get_for_reader(actor=self.user, message_id=frame.message_id)
        match frame:
            case p.MessageEdit():
                message_services.message_edit(actor=self.user, message=message, body=frame.body)
            case p.MessageDelete():
                message_services.message_delete(actor=self.user, message=message)
            case p.ReactionAdd():
                reaction_services.reaction_add(actor=self.user, message=message, emoji=frame.emoji)
            case p.ReactionRemove():
                reaction_services.reaction_remove(
                    actor=self.user, message=message, emoji=frame.emoji
                )
        return int(Room.objects.filter(pk=message.room_id).values_list("head_seq", flat=True)[0])

    async def _typing(self, frame: p.Typing) -> None:
        """At most one ``typing`` per user and room every TYPING_INTERVAL_S, whichever of the
        user's connections (in whichever gateway) sends it: the slot is a cache key, taken
        atomically by ``cache.add`` (Redis in the scaled mode, shared by every gateway)."""
        if frame.room not in self.readable:
            raise NotFound("No such room.")
        interval = settings.TYPING_INTERVAL_S
        now = time.monotonic()
        # A client sends typing per keystroke: this connection's own recent slot answers most
        # of them without a trip to the cache.
        if now - self.typed_at.get(frame.room, -1e9) < interval:
            return
        key = f"sphere:typing:{self.user.pk}:{frame.room}"
        timeout = math.ceil(interval)  # Redis keeps whole seconds: round up, keep the promise
        if cache_is_shared():
            taken = await in_thread(cache.add)(key, 1, timeout)
        else:
            taken = cache.add(key, 1, timeout)  # local memory: no I/O to take off the loop
        if not taken:
            return
        self.typed_at[frame.room] = now
        event = p.encode(p.TypingEvent(room=frame.room, user=p.User(**user_dict(self.user))))
        publish.publish_room_frame(room_id=frame.room, frame=event, exclude_user=self.user.pk)

    async def _sync(self, frame: p.Sync) -> p.Synced:
        """Replay every event after the seqs named, in order, then continue live; on the first
        sync, the rooms not named start live after their ``head_seq`` in ``hello``. A named
        room the user cannot read gets ``error {code: "not_found"}`` first, and is left out of
        ``synced``; the other rooms sync all the same."""
        named = {int(room): seq for room, seq in frame.rooms.items()}
        for room_id in sorted(set(named) - self.readable):
            # The frame's one answer cannot refuse a part of it: each refused room has its own
            # error, naming it (missing and unreadable alike, as everywhere).
            self.socket.send_now(
                p.Error(code="not_found", message=f"No such room: {room_id}.", ref=frame.ref)
            )
        heads = await in_thread(self._heads)(set(named) & self.readable)
        first = not self.started
        self.started = True
        delivery = self.delivery
        synced: dict[str, int] = {}
        for room_id in sorted(self.readable):
            if room_id not in self.readable:
                continue  # lost while an earlier room replayed: nothing of it after room.removed
            if room_id in named:
                after = min(named[room_id], heads.get(room_id, 0))  # a seq past the head is capped
                synced[str(room_id)] = await delivery.replay(room_id, after)
            elif first:
                await delivery.replay(room_id, self.hello_heads.get(room_id, 0))
        return p.Synced(rooms=synced, ref=frame.ref)

    def _heads(self, room_ids: set[int]) -> dict[int, int]:
        return dict(Room.objects.filter(pk__in=room_ids).values_list("pk", "head_seq"))
