"""The WebSocket gateway at ``/ws/v1/`` (protocol v1, CONTRACT.md section 4).

One consumer per connection. Client frames are decoded once and handled by the same services
as REST. Room events reach the connection from the fan-out hub through ``deliver_event``
without any per-recipient dispatch; ``fanout.delivery.Delivery`` keeps each room in seq order,
exactly once, merging replays with live events. Frames go out through one writer task; a
connection whose unsent bytes pass ``WS_OUTBOUND_BUFFER`` is closed with 4429.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.contrib.auth.models import User

from chat import protocol as p
from chat.gateway_io import (
    limit_message_size,
    on_ping,
    raw_writer,
    text_frame,
    transport_backlog,
    transport_of,
)
from chat.session import Session
from chat.threads import in_thread
from communities.services.accounts import ws_ticket_of_disabled_account, ws_ticket_redeem
from fanout.delivery import Delivery
from fanout.gateway import Gateway, gateway_for_running_loop
from fanout.hub import hub_for_running_loop

logger = logging.getLogger(__name__)

CLOSE_BAD_TICKET = 4401
CLOSE_HEARTBEAT = 4408
CLOSE_SLOW = 4429
CLOSE_DISABLED = 4509
CLOSE_TOO_BIG = 1009
CLOSE_TRY_AGAIN = 1013  # the fan-out registry is out of reach: reconnect later


class GatewayConsumer(AsyncWebsocketConsumer):
    # No channel-layer channel per connection: delivery comes from the hub, in process.
    channel_layer_alias = "__sphere_none__"

    user: User
    gateway: Gateway
    raw: Callable[[bytes], bool] | None = None
    delivery: Delivery
    session: Session

    async def connect(self) -> None:
        from chat.handshake import ticket_of

        self.closed = False
        self.outbox: asyncio.Queue[bytes | None] | None = None  # the ASGI send path only
        self.queued_bytes = 0
        self.transport: object = None
        self.tasks: list[asyncio.Task[None]] = []
        self.early: list[bytes] = []
        ticket = ticket_of(self.scope)
        user: User | None = None
        disabled = False
        if ticket is not None:
            user = await in_thread(ws_ticket_redeem)(ticket=ticket)
            if user is None:
                disabled = await in_thread(ws_ticket_of_disabled_account)(ticket=ticket)
        else:
            session_user = self.scope.get("user")
            if session_user is not None and session_user.is_authenticated:
                if not self.scope.get("sphere_origin_ok"):
                    await self.close(code=403)  # a cookie needs an allowed Origin
                    return
                user = session_user
        await self.accept()
        limit_message_size(self.base_send, p.MAX_FRAME)
        self.transport = transport_of(self.base_send)
        # Frames go straight to the socket where the server allows it (daphne): encoded and
        # framed once per batch, written to each connection without a task hop.
        self.raw = (
            raw_writer(self.base_send, settings.WS_OUTBOUND_BUFFER)
            if settings.WS_DIRECT_WRITE
            else None
        )
        if user is None:
            # 4509 tells the client not to reconnect: a new ticket would not help.
            await self._close(CLOSE_DISABLED if disabled else CLOSE_BAD_TICKET)
            return
        self.user = user
        self.user_id = user.pk
        self.last_life = time.monotonic()
        # The server answers WebSocket pings itself; they are life all the same.
        on_ping(self.base_send, self._alive)
        self.delivery = Delivery(
            self._enqueue,
            self._resync_frame,
            drain=self._drain,
            user_id=user.pk,
            revoked=self._revoked_by_store,
        )
        self.session = Session(self)
        # Attach before reading the rooms for hello, and hold what the hub hands over until
        # hello is queued: an access change in between is then applied, not lost.
        self.held: list[tuple[str, int, int, bytes, int]] | None = []
        if not settings.SCALED:
            hub_for_running_loop()  # the embedded partitions run beside this gateway
        self.gateway = gateway_for_running_loop()
        try:
            first = await self.gateway.attach(self)
        except Exception as exc:
            # The registry is out of reach: the client retries later (1013) rather than
            # running on a connection that would miss live events.
            logger.warning(
                "fan-out registry unreachable (%s); connection refused with 1013",
                type(exc).__name__,
            )
            del self.gateway
            await self._close(CLOSE_TRY_AGAIN)
            return
        hello = await self.session.hello()
        self._enqueue(hello)
        held, self.held = self.held, None
        for kind, room_id, head_seq, frame, version in held:
            if kind == "revoke":
                self.revoke_room(room_id, frame, version)
            elif kind == "grant":
                self.grant_room(room_id, head_seq, frame, version)
            else:
                self.deliver_frame(frame)
        if self.raw is None:
            # Only the ASGI send path needs a queue and a task of its own per connection.
            self.outbox = asyncio.Queue()
            self.tasks.append(asyncio.ensure_future(self._writer()))
            for frame in self.early:
                self.outbox.put_nowait(frame)
        self.early = []
        heartbeats.watch(self)
        if first:
            await self.session.presence("online")

    async def disconnect(self, code: int) -> None:
        self.closed = True
        heartbeats.forget(self)
        for task in getattr(self, "tasks", []):
            task.cancel()
        if hasattr(self, "delivery"):
            self.delivery.close()
        await self._leave()

    async def _leave(self) -> None:
        """Out of the gateway at once, then presence; a second call does nothing."""
        if hasattr(self, "gateway") and await self.gateway.detach(self):
            await self.session.presence("offline")

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        data: str | bytes = text_data if text_data is not None else (bytes_data or b"")
        if len(data) > p.MAX_FRAME:  # where the server did not enforce the limit itself
            await self._close(CLOSE_TOO_BIG)
            return
        self._alive()
        if not hasattr(self, "session"):
            return
        try:
            frame = p.decode(data)
        except p.BadFrame as exc:
            self._enqueue(p.encode(p.Error(code="bad_frame", message=str(exc), ref=p.ref_of(data))))
            return
        await self.session.handle(frame)

    # --- the hub's side (fanout.interfaces.Connection) -----------------------------------------

    def deliver_event(self, room_id: int, seq: int, frame: bytes) -> bool:
        return self.delivery.offer(room_id, seq, frame)

    def deliver_frame(self, frame: bytes) -> None:
        if self.held is not None:
            self.held.append(("frame", 0, 0, frame, 0))
        elif self.session.accepts_ephemeral(frame):
            self._enqueue(frame)

    def revoke_room(self, room_id: int, frame: bytes, version: int = 0) -> None:
        if self.held is not None:
            self.held.append(("revoke", room_id, 0, frame, version))
            return
        if not self.session.access_news(room_id, version):
            return  # a redelivered or late item: a newer change (or hello) is applied already
        self.delivery.stop(room_id)
        self.session.lose_room(room_id)
        self._enqueue(frame)

    def grant_room(self, room_id: int, head_seq: int, frame: bytes, version: int = 0) -> None:
        if self.held is not None:
            self.held.append(("grant", room_id, head_seq, frame, version))
            return
        if not self.session.access_news(room_id, version):
            return
        self.session.gain_room(room_id, head_seq)
        self._enqueue(frame)
        if self.session.started:
            self.delivery.start_live(room_id, head_seq)
            # An event of the room handled before this grant was dropped here: fetch it.
            self.delivery.catch_up(room_id)

    def _revoked_by_store(self, room_id: int) -> None:
        """A read from the database found the room no longer readable (its ``room.removed``
        never came, or is still on its way): stop it here and say so."""
        self.session.lose_room(room_id)
        self._enqueue(p.encode(p.RoomRemoved(room=room_id, reason="removed")))

    def recover(self) -> None:
        if self.held is None and self.session.started:
            for room_id in list(self.delivery.rooms):
                self.delivery.catch_up(room_id)

    # --- output ------------------------------------------------------------------------------

    def _enqueue(self, frame: bytes) -> None:
        if self.closed:
            return
        if self.raw is not None:
            if not self.raw(text_frame(frame)):
                self._slow()
            return
        self.queued_bytes += len(frame)
        if self.outbox is None:  # before the writer starts (hello and what came with it)
            self.early.append(frame)
            return
        if self._pressure() > settings.WS_OUTBOUND_BUFFER:
            logger.info("closing a slow connection of user %s (4429)", self.user_id)
            self.closed = True
            self.outbox.put_nowait(None)
            return
        self.outbox.put_nowait(frame)

    def _slow(self) -> None:
        logger.info("closing a slow connection of user %s (4429)", self.user_id)
        self.closed = True
        self.tasks.append(asyncio.ensure_future(self._close(CLOSE_SLOW)))

    def _pressure(self) -> int:
        return self.queued_bytes + transport_backlog(self.transport)

    async def _drain(self) -> None:
        """Let a replay wait while this connection's unsent bytes are above half the bound:
        only a client that does not read at all is closed (4429, or 4408 when it also stops
        sending), never one that is merely catching up."""
        low = settings.WS_OUTBOUND_BUFFER // 2
        while not self.closed and self._pressure() > low:  # noqa: ASYNC110 (a socket buffer: no event to await)
            await asyncio.sleep(0.005)

    def _resync_frame(self, room_id: int, from_seq: int) -> bytes:
        return p.encode(p.RoomResync(room=room_id, from_seq=from_seq))

    async def _writer(self) -> None:
        assert self.outbox is not None
        while True:
            frame = await self.outbox.get()
            if frame is None:
                await self._close(CLOSE_SLOW)
                return
            self.queued_bytes -= len(frame)
            await self.send(text_data=frame.decode())

    def _alive(self) -> None:
        self.last_life = time.monotonic()

    def silent_for(self, now: float) -> float:
        return now - self.last_life

    async def _close(self, code: int) -> None:
        self.closed = True
        # Leave before the close handshake ends: a client that stopped reading may never
        # answer it, and must not count as online (or be written to) meanwhile.
        await self._leave()
        await self.close(code=code)

    def send_now(self, frame: Any) -> None:
        """Queue a server frame (a Struct or dict) for this connection."""
        self._enqueue(p.encode(frame))


class Heartbeats:
    """One task per event loop watches every connection's last sign of life (a frame, or a
    WebSocket ping) and closes with 4408 those silent for three heartbeats: no task per
    connection, whose memory would grow with every idle socket."""

    def __init__(self) -> None:
        self.watched: weakref.WeakSet[GatewayConsumer] = weakref.WeakSet()
        self.task: asyncio.Task[None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    def watch(self, consumer: GatewayConsumer) -> None:
        loop = asyncio.get_running_loop()
        if self.task is None or self.task.done() or self.loop is not loop:
            self.loop, self.watched = loop, weakref.WeakSet()
            self.task = loop.create_task(self._run())
        self.watched.add(consumer)

    def forget(self, consumer: GatewayConsumer) -> None:
        self.watched.discard(consumer)

    async def _run(self) -> None:
        while True:
            period = settings.WS_HEARTBEAT_S
            await asyncio.sleep(period / 2)
            now = time.monotonic()
            for consumer in list(self.watched):
                if not consumer.closed and consumer.silent_for(now) > 3 * period:
                    self.watched.discard(consumer)
                    consumer.tasks.append(asyncio.ensure_future(consumer._close(CLOSE_HEARTBEAT)))


heartbeats = Heartbeats()
