"""The WebSocket gateway at ``/ws/v1/`` (protocol v1, docs/protocol.md).

One consumer per connection, and socket I/O only: the handshake's credentials, accepting and
closing, decoding client frames, the way out, and the heartbeat. Everything about rooms and
frames is the connection's ``Session``; what the fan-out tier hands over (``deliver_event`` and
the rest of ``fanout.hooks.Connection``) is forwarded to it.

Frames go straight to the socket where the server allows it (``socket_writer``: one write per
connection per loop turn), or else through one writer task; a connection whose unsent bytes
pass ``WS_OUTBOUND_BUFFER`` is closed with 4429.

A connection is accepted at once and opened (ticket, registry, ``hello``) a few at a time per
event loop, so that a reconnect storm does not queue the live connections' frames behind it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import Any

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.contrib.auth.models import User

from chat import presence
from chat import protocol as p
from chat.gateway.handshake import ticket_of
from chat.gateway.heartbeats import heartbeats
from chat.gateway.session import Session
from chat.gateway.socket_writer import (
    DirectWriter,
    limit_message_size,
    on_ping,
    raw_writer,
    text_frame,
    transport_backlog,
    transport_of,
)
from chat.gateway.threads import in_thread
from communities.services.accounts import ws_ticket_of_disabled_account, ws_ticket_redeem
from fanout.connections import LocalConnections, TooManyConnections
from fanout.transport import current as fanout_transport

logger = logging.getLogger(__name__)

# Connections opening at once per event loop (ticket, accept, registry, hello); the others wait
# their turn. Enough to keep the database threads and Redis busy, few enough that the loop's
# queue of ready callbacks stays short.
OPENING_AT_ONCE = 16
_gate: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None


def _opening() -> asyncio.Semaphore:
    """The running loop's gate (a server runs one loop; a test, one after another)."""
    global _gate
    loop = asyncio.get_running_loop()
    if _gate is None or _gate[0] is not loop:
        _gate = (loop, asyncio.Semaphore(OPENING_AT_ONCE))
    return _gate[1]


class GatewayConsumer(AsyncWebsocketConsumer):
    # No channel-layer channel per connection: delivery comes from the hub, in process.
    channel_layer_alias = "__sphere_none__"

    user: User
    gateway: LocalConnections
    raw: DirectWriter | None = None
    session: Session

    async def connect(self) -> None:
        self.closed = False
        self.outbox: asyncio.Queue[bytes | None] | None = None  # the ASGI send path only
        self.queued_bytes = 0
        self.transport: object = None
        self.tasks: list[asyncio.Task[None]] = []
        self.early: list[bytes] = []
        ticket = ticket_of(self.scope)
        session_user = self.scope.get("user") if ticket is None else None
        signed_in = session_user is not None and session_user.is_authenticated
        if signed_in and not self.scope.get("sphere_origin_ok"):
            await self.close(code=403)  # a cookie needs an allowed Origin
            return
        # Accepted at once: the server drops a handshake not accepted within its timeout
        # (daphne: 5 s), and the opening below may wait its turn.
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
        # A reconnect storm opens its connections a few at a time: each opening is a string of
        # callbacks on the event loop, and a thousand at once would queue live frames and
        # answers behind them all for a second or more.
        async with _opening():
            await self._open(ticket, session_user)

    async def _open(self, ticket: str | None, session_user: User | None) -> None:
        """Who the user is, then the registry, ``hello`` and presence."""
        user: User | None = None
        disabled = False
        if ticket is not None:
            user = await in_thread(ws_ticket_redeem)(ticket=ticket)
            if user is None:
                disabled = await in_thread(ws_ticket_of_disabled_account)(ticket=ticket)
        elif session_user is not None and session_user.is_authenticated:
            user = session_user
        if user is None:
            # 4509 tells the client not to reconnect: a new ticket would not help.
            await self._close(p.CLOSE_DISABLED if disabled else p.CLOSE_BAD_TICKET)
            return
        self.user = user
        self.user_id = user.pk
        # The reference of the token that got the ticket (empty for a session): revoking the
        # token closes this socket (``close_for``).
        self.credential = str(getattr(user, "ws_credential", "") or "")
        self.last_life = time.monotonic()
        # The server answers WebSocket pings itself; they are life all the same.
        on_ping(self.base_send, self._alive)
        # Attached before the session reads the rooms for hello: it holds what the hub hands
        # over until hello is queued.
        self.session = Session(self)
        # This process's connections (with the embedded partitions beside them, where the
        # mode runs them in process).
        self.gateway = fanout_transport().connections()
        try:
            first = await self.gateway.attach(self, settings.WS_MAX_PER_USER)
        except TooManyConnections:
            # The user holds WS_MAX_PER_USER sockets already (every gateway together): the
            # client may retry later, or close one of its others (docs/protocol.md).
            logger.info("too many connections of user %s; closed with 4430", self.user_id)
            del self.gateway
            await self._close(p.CLOSE_TOO_MANY)
            return
        except Exception as exc:
            # The registry is out of reach: the client retries later (1013) rather than
            # running on a connection that would miss live events.
            logger.warning(
                "fan-out registry unreachable (%s); connection refused with 1013",
                type(exc).__name__,
            )
            del self.gateway
            await self._close(p.CLOSE_TRY_AGAIN)
            return
        # The user's first connection anywhere comes online: hello's trip to the database
        # reads the presence audience too.
        await self.session.send_hello(online=first)
        if self.session.refused is not None:
            # Disabled or revoked while it opened (docs/protocol.md, "Closing").
            self.close_for(self.session.refused, "")
            return
        if self.raw is None:
            # Only the ASGI send path needs a queue and a task of its own per connection.
            self.outbox = asyncio.Queue()
            self.tasks.append(asyncio.ensure_future(self._writer()))
            for frame in self.early:
                self.outbox.put_nowait(frame)
        self.early = []
        heartbeats.watch(self)

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Channels' dispatch, less the ``close_old_connections`` it runs before every message:
        a trip to the one thread Channels keeps for synchronous code, shared by every socket
        of the process, for each connect and each client frame. The gateway never uses the
        database on the event loop: its database work runs in worker threads (``in_thread``),
        which close old connections themselves."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def disconnect(self, code: int) -> None:
        self.closed = True
        heartbeats.forget(self)
        for task in getattr(self, "tasks", []):
            task.cancel()
        if hasattr(self, "session"):
            self.session.close()
        await self._leave()

    async def _leave(self) -> None:
        """Out of the gateway at once; a second call does nothing. The user's last connection
        anywhere leaves an ``offline`` pending: announced after PRESENCE_GRACE_S unless the
        user connected again meanwhile (docs/protocol.md, "Presence")."""
        if not hasattr(self, "gateway"):
            return
        token = await self.gateway.leave(self)
        if token is not None:
            presence.offline_after_grace(
                self.gateway,
                self.user_id,
                token,
                functools.partial(self.session.presence, "offline"),
            )

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.closed:
            return  # closing (e.g. the account was disabled): nothing more is acted on
        data: str | bytes = text_data if text_data is not None else (bytes_data or b"")
        if len(data) > p.MAX_FRAME:  # where the server did not enforce the limit itself
            await self._close(p.CLOSE_TOO_BIG)
            return
        self._alive()
        if not hasattr(self, "session"):
            return
        try:
            frame = p.decode(data)
        except p.BadFrame as exc:
            self.send_now(p.Error(code="bad_frame", message=str(exc), ref=p.ref_of(data)))
            return
        await self.session.handle(frame)

    # --- the tier's side (fanout.hooks.Connection), forwarded to the session ----------------------

    def deliver_event(self, room_id: int, seq: int, frame: bytes) -> bool:
        return self.session.delivery.offer(room_id, seq, frame)

    def deliver_frame(self, frame: bytes) -> None:
        self.session.deliver_frame(frame)

    def revoke_room(self, room_id: int, frame: bytes, version: int = 0) -> None:
        self.session.revoke_room(room_id, frame, version)

    def grant_room(self, room_id: int, head_seq: int, frame: bytes, version: int = 0) -> None:
        self.session.grant_room(room_id, head_seq, frame, version)

    def recover(self) -> None:
        self.session.recover()

    def close_for(self, code: int, credential: str) -> None:
        """Close at once for an account disabled (``credential`` empty) or for the revoked
        credential this socket was opened with; nothing it sends from now on is acted on."""
        if self.closed or (credential and credential != self.credential):
            return
        logger.info("closing a connection of user %s (%s)", self.user_id, code)
        self.closed = True
        self.close_soon(code)

    # --- output -----------------------------------------------------------------------------------

    def enqueue(self, frame: bytes) -> None:
        """Queue an encoded frame; nothing once the connection is closing."""
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

    def send_now(self, frame: p.ServerFrame) -> None:
        """Encode and queue a server frame."""
        self.enqueue(p.encode(frame))

    def _slow(self) -> None:
        logger.info("closing a slow connection of user %s (4429)", self.user_id)
        self.closed = True
        self.close_soon(p.CLOSE_SLOW)

    def _pressure(self) -> int:
        taken = self.raw.pending if self.raw is not None else 0  # to leave at the turn's end
        return self.queued_bytes + taken + transport_backlog(self.transport)

    async def drain(self) -> None:
        """Let a replay wait while this connection's unsent bytes are above half the bound:
        only a client that does not read at all is closed (4429, or 4408 when it also stops
        sending), never one that is merely catching up (docs/protocol.md, "Staying in step")."""
        low = settings.WS_OUTBOUND_BUFFER // 2
        while not self.closed and self._pressure() > low:  # noqa: ASYNC110 (a socket buffer: no event to await)
            await asyncio.sleep(0.005)

    async def _writer(self) -> None:
        assert self.outbox is not None
        while True:
            frame = await self.outbox.get()
            if frame is None:
                await self._close(p.CLOSE_SLOW)
                return
            self.queued_bytes -= len(frame)
            await self.send(text_data=frame.decode())

    # --- life and closing -------------------------------------------------------------------------

    def _alive(self) -> None:
        self.last_life = time.monotonic()

    def silent_for(self, now: float) -> float:
        return now - self.last_life

    def close_soon(self, code: int) -> None:
        """Close with ``code`` from a caller that cannot wait (a write, the heartbeat)."""
        self.tasks.append(asyncio.ensure_future(self._close(code)))

    async def _close(self, code: int) -> None:
        self.closed = True
        # Leave before the close handshake ends: a client that stopped reading may never
        # answer it, and must not count as online (or be written to) meanwhile.
        await self._leave()
        if self.raw is not None:
            self.raw.flush()  # what the connection was given goes before the close frame
        await self.close(code=code)
