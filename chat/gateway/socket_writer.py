"""What the gateway needs of the server's WebSocket protocol that ASGI does not give it: a
size limit enforced before buffering, word of the client's pings, how many bytes the server has
accepted for a connection but not yet written to its socket, and a writer that puts an already
framed message on the socket without a task hop.

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

import functools
import struct
from collections.abc import Callable
from typing import Any


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


def raw_writer(send: Any, limit: int) -> Callable[[bytes], bool] | None:
    """A function that writes an already framed WebSocket message to the connection, or
    answers False without writing it when the bytes the server holds for the connection would
    pass ``limit`` (a client that stopped reading); None where writing directly is not
    possible (another server, or a negotiated extension such as compression that changes the
    frames).

    While nothing is queued for the socket (in autobahn or in Twisted), the frame goes to the
    socket with one ``send`` call: Twisted's own path would buffer it, register the socket for
    writability and write it on the next loop turn, several system calls and far more Python
    per frame. What the socket does not take, and anything while a queue is non-empty, goes
    through the protocol's ``sendData``, so frames keep their order either way.
    """
    protocol = _protocol(send)
    if (
        protocol is None
        or not hasattr(protocol, "sendData")
        or getattr(protocol, "_perMessageCompress", None) is not None
        or getattr(protocol, "state", None) != getattr(protocol, "STATE_OPEN", object())
    ):
        return None
    send_data = protocol.sendData
    open_state = protocol.STATE_OPEN
    transport: Any = getattr(protocol, "transport", None)
    sock: Any = getattr(transport, "socket", None)
    direct = (
        sock is not None
        and not getattr(transport, "TLS", False)
        and hasattr(transport, "dataBuffer")
        and hasattr(transport, "_tempDataLen")
        and hasattr(protocol, "send_queue")
    )

    def write(framed: bytes) -> bool:
        if protocol.state != open_state:
            return True
        if (
            direct
            and not protocol.send_queue
            and not transport.dataBuffer
            and not transport._tempDataLen
            and not transport.disconnecting
        ):
            # Nothing is held for the socket: no backlog to weigh against the limit.
            try:
                sent = sock.send(framed)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                sent = 0  # Twisted's write path meets the same error and closes the connection
            if sent != len(framed):
                transport.write(framed[sent:])
            return True
        if transport_backlog(transport) + len(framed) > limit:
            return False
        send_data(framed)
        return True

    return write


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
