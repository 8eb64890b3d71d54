"""What the gateway needs of the server's WebSocket protocol that ASGI does not give it: a
size limit enforced before buffering, word of the client's pings, how many bytes the server has
accepted for a connection but not yet written to its socket, and a writer that puts already
framed messages on the socket without a task hop, in one write per connection per loop turn.

Daphne's ``send`` callable is ``partial(server.handle_reply, protocol)``, which is how the
gateway reaches the autobahn protocol object and, through it, Twisted's transport. Under any
other server each function here says it could not (False, None or 0) and the gateway goes on
without it.

ASGI gives an application no backpressure: under daphne, ``send`` returns at once and a client
that stops reading makes Twisted's write buffer grow without bound. Reading the protocol's
transport buffer lets the gateway close such a connection (4429) before it costs the process
its memory; elsewhere the gateway's own queue bound alone applies.

Everything here reaches into daphne, autobahn and Twisted internals: the protocol's
``maxMessagePayloadSize``, ``maxFramePayloadSize``, ``failByDrop``, ``onPing``, ``sendData``,
``send_queue``, ``state``/``STATE_OPEN`` and ``_perMessageCompress``; the transport's
``socket``, ``TLS``, ``dataBuffer``, ``offset``, ``_tempDataLen``, ``disconnecting`` and
``write``. ``tests/chat/test_socket_writer.py`` checks each of them on a real daphne server, so
an upgrade that changes one fails there rather than in production.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import struct
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)


def _unwrap(send: Any) -> Any:
    """Through Channels' session middleware, which wraps ``send`` in a bound method."""
    for _ in range(4):
        owner = getattr(send, "__self__", None)
        inner = getattr(owner, "real_send", None)
        if inner is None:
            return send
        send = inner
    return send


def _protocol(send: Any) -> Any:
    send = _unwrap(send)
    if not isinstance(send, functools.partial) or not send.args:
        return None
    return send.args[0]


def limit_message_size(send: Any, limit: int) -> bool:
    """Make the WebSocket protocol itself refuse larger messages (closing with 1009) before it
    buffers them. True where the server supports it (daphne's autobahn protocol)."""
    protocol = _protocol(send)
    if protocol is None or not hasattr(protocol, "maxMessagePayloadSize"):
        return False
    protocol.maxMessagePayloadSize = limit
    protocol.maxFramePayloadSize = limit
    protocol.failByDrop = False  # send the 1009 close frame rather than drop the socket
    return True


def on_ping(send: Any, callback: Callable[[], None]) -> bool:
    """Call ``callback`` on every WebSocket ping the client sends, before the protocol answers
    it. Autobahn answers pings itself and tells the application nothing, yet a ping is life to
    the heartbeat (docs/protocol.md, "Staying in step"). True where the server allows it
    (daphne); elsewhere only frames count as life."""
    protocol = _protocol(send)
    answer = getattr(protocol, "onPing", None)
    if answer is None or not callable(answer):
        return False

    def ping(payload: bytes) -> None:
        try:
            callback()
        finally:
            answer(payload)  # the pong goes out whatever the callback did

    # An instance attribute shadows the class's method: autobahn calls ``self.onPing``.
    protocol.onPing = ping
    return True


def transport_of(send: Any) -> Any:
    """The connection's transport, found once at connect; None under another server."""
    return getattr(_protocol(send), "transport", None)


def transport_backlog(transport: Any) -> int:
    if transport is None:
        return 0
    try:
        buffered = len(transport.dataBuffer) - getattr(transport, "offset", 0)
        return max(0, buffered) + int(getattr(transport, "_tempDataLen", 0))
    except (AttributeError, TypeError):
        return 0


# Frames gathered for one connection in one loop turn past this many bytes go out at once: a
# bigger write saves nothing more, and a burst (a replay) must not wait whole in memory.
GATHER_MAX = 64 * 1024


class _Flusher:
    """Writes what each connection gathered in a loop turn: one callback per turn, scheduled by
    the first frame of the turn, for every connection written to."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.waiting: list[DirectWriter] = []

    def add(self, writer: DirectWriter) -> None:
        if not self.waiting:
            self.loop.call_soon(self.flush)
        self.waiting.append(writer)

    def flush(self) -> None:
        waiting, self.waiting = self.waiting, []
        for writer in waiting:
            try:
                writer.flush()
            except Exception:  # one socket's failure never keeps the others' frames
                logger.exception("gateway: a socket write failed")


_current: _Flusher | None = None


def _flusher() -> _Flusher:
    """The running loop's flusher (a server runs one loop; a test, one after another)."""
    global _current
    loop = asyncio.get_running_loop()
    if _current is None or _current.loop is not loop:
        _current = _Flusher(loop)
    return _current


class DirectWriter:
    """Writes already framed WebSocket messages to one connection, gathered per loop turn: the
    frames a connection is given in one turn (a burst in a room, events of several rooms,
    presence) leave in one write at the end of the turn, in order.

    Calling it with a frame answers False, without taking it, when the bytes the server holds
    for the connection (in Twisted and autobahn, and gathered here) would pass ``limit``: a
    client that stopped reading. While nothing is held for the socket, the frames go to it
    with one ``send`` call: Twisted's own path would buffer them, register the socket for
    writability and write them on the next loop turn, several system calls and far more
    Python. What the socket does not take, and anything while a queue is non-empty, goes
    through the protocol's ``sendData``, so frames keep their order either way.
    """

    __slots__ = (
        "direct",
        "flusher",
        "frames",
        "limit",
        "open_state",
        "pending",
        "protocol",
        "scheduled",
        "send_data",
        "sock",
        "transport",
    )

    def __init__(self, protocol: Any, limit: int) -> None:
        self.protocol = protocol
        self.limit = limit
        self.send_data = protocol.sendData
        self.open_state = protocol.STATE_OPEN
        self.transport: Any = getattr(protocol, "transport", None)
        self.sock: Any = getattr(self.transport, "socket", None)
        self.direct = (
            self.sock is not None
            and not getattr(self.transport, "TLS", False)
            and hasattr(self.transport, "dataBuffer")
            and hasattr(self.transport, "_tempDataLen")
            and hasattr(protocol, "send_queue")
        )
        self.flusher = _flusher()
        self.frames: list[bytes] = []
        self.pending = 0  # bytes in ``frames``: taken, to be written at the end of the turn
        self.scheduled = False

    def __call__(self, framed: bytes) -> bool:
        if self.protocol.state != self.open_state:
            return True
        if not self._idle():
            # The server holds bytes for the socket already: weigh them against the bound.
            held = transport_backlog(self.transport) + self.pending
            if held + len(framed) > self.limit:
                return False
        self.frames.append(framed)
        self.pending += len(framed)
        if not self.scheduled:
            self.scheduled = True
            self.flusher.add(self)
        if self.pending >= GATHER_MAX:
            self.write_out()
        return True

    def flush(self) -> None:
        """Write what was gathered (the end of the loop turn)."""
        self.scheduled = False
        self.write_out()

    def write_out(self) -> None:
        frames = self.frames
        if not frames:
            return
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        self.frames = []
        self.pending = 0
        if self.protocol.state != self.open_state:
            return  # closed meanwhile: nothing more goes out
        if self._idle():
            try:
                sent = self.sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                sent = 0  # Twisted's write path meets the same error and closes the connection
            if sent != len(data):
                self.transport.write(data[sent:])
        else:
            self.send_data(data)

    def _idle(self) -> bool:
        """Nothing is held for the socket: a write can go straight to it."""
        transport = self.transport
        return bool(
            self.direct
            and not self.protocol.send_queue
            and not transport.dataBuffer
            and not transport._tempDataLen
            and not transport.disconnecting
        )


def raw_writer(send: Any, limit: int) -> DirectWriter | None:
    """The connection's ``DirectWriter`` (called on the running event loop), or None where
    writing directly is not possible (another server, or a negotiated extension such as
    compression that changes the frames)."""
    protocol = _protocol(send)
    if (
        protocol is None
        or not hasattr(protocol, "sendData")
        or getattr(protocol, "_perMessageCompress", None) is not None
        or getattr(protocol, "state", None) != getattr(protocol, "STATE_OPEN", object())
    ):
        return None
    return DirectWriter(protocol, limit)


_last: tuple[bytes, bytes] | None = None


def text_frame(payload: bytes) -> bytes:
    """``payload`` (UTF-8 JSON) as one unmasked WebSocket text frame. A batch writes the same
    payload object to many connections, so the last one framed is kept and reused."""
    global _last
    last = _last
    if last is not None and last[0] is payload:
        return last[1]
    size = len(payload)
    if size < 126:
        header = bytes((0x81, size))
    elif size < 65536:
        header = struct.pack("!BBH", 0x81, 126, size)
    else:
        header = struct.pack("!BBQ", 0x81, 127, size)
    framed = header + payload
    _last = (payload, framed)
    return framed
