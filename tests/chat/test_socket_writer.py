"""What the gateway reaches of daphne, autobahn and Twisted beyond ASGI
(``chat.gateway.socket_writer``), checked against the real thing.

A probe ASGI application runs under a real daphne process and reports, over its own sockets,
every attribute and method the writer relies on; the writer then writes to a real socket, both
directly and, behind a backlog, through the protocol, in order, and what a connection is given
in one loop turn leaves in one write. An upgrade of daphne, autobahn or
Twisted that changes any of it fails here. The whole Sphere server checks the rest: a WebSocket
ping is life to the heartbeat, though daphne answers it without telling the app.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.protocol import State

from chat.gateway.socket_writer import (
    GATHER_MAX,
    DirectWriter,
    limit_message_size,
    on_ping,
    raw_writer,
    text_frame,
    transport_backlog,
    transport_of,
)
from tests.e2e.conftest import ROOT, Server, free_port, own_database

HEARTBEAT_S = 1  # the server closes a connection silent for 3 s
TIMEOUT = 15


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One gateway (plus one fan-out worker in the scaled mode) with a short heartbeat."""
    from tests.e2e.cluster import Cluster

    with own_database(os.environ.get("DATABASE_URL", ""), "gwio") as database_url:
        cluster = Cluster(
            tmp_path_factory.mktemp("gateway-io-var"),
            database_url,
            SPHERE_WS_HEARTBEAT_S=str(HEARTBEAT_S),
        )
        try:
            cluster.start(gateways=1, workers=1 if cluster.scaled else 0)
            yield cluster.servers[0]
        finally:
            cluster.stop()


async def open_socket(server: Server, token: str) -> Any:
    """A connected socket past ``hello`` that sends nothing by itself: the client library's
    own keepalive pings are off."""
    ticket = await asyncio.to_thread(server.ticket, token)
    ws = await websockets.connect(
        f"{server.ws}?ticket={ticket}", ping_interval=None, open_timeout=TIMEOUT
    )
    hello = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    assert (hello["type"], hello["heartbeat_s"]) == ("hello", HEARTBEAT_S)
    return ws


async def close_code_of_silent(server: Server, token: str) -> int | None:
    silent = await open_socket(server, token)
    await asyncio.wait_for(silent.wait_closed(), TIMEOUT)
    return silent.close_code


@pytest.mark.timeout(180)
async def test_websocket_pings_alone_keep_a_connection_alive(server: Server) -> None:
    _, token = await asyncio.to_thread(server.register)
    pinging = await open_socket(server, token)

    async def ping_forever() -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            while True:
                await asyncio.wait_for(await pinging.ping(), TIMEOUT)  # sent, and answered
                await asyncio.sleep(HEARTBEAT_S / 4)  # pacing, well inside a heartbeat

    pinger = asyncio.ensure_future(ping_forever())
    try:
        # Each silent socket, opened after the pinging one, is closed after 3 heartbeats: two in
        # turn are the clock, over 6 heartbeats of the pinging socket's life.
        assert await close_code_of_silent(server, token) == 4408
        assert await close_code_of_silent(server, token) == 4408
        assert pinging.state is State.OPEN, pinging.close_code
        assert not pinger.done()
        # Still served, not merely not yet closed.
        await pinging.send(json.dumps({"type": "ping", "ref": "still"}))
        pong = json.loads(await asyncio.wait_for(pinging.recv(), TIMEOUT))
        assert pong == {"type": "pong", "ref": "still"}
    finally:
        pinger.cancel()
        await pinging.close()


def test_on_ping_declines_where_the_server_has_no_protocol_to_hook() -> None:
    async def send(message: Any) -> None:
        return None

    assert on_ping(send, lambda: None) is False
    assert on_ping(object(), lambda: None) is False


def test_on_ping_refreshes_before_the_protocol_answers() -> None:
    import functools

    calls: list[str] = []

    class Protocol:
        def onPing(self, payload: bytes) -> None:
            calls.append(f"pong {payload!r}")

    protocol = Protocol()
    send = functools.partial(lambda protocol, message: None, protocol)
    assert on_ping(send, lambda: calls.append("life")) is True
    protocol.onPing(b"x")
    assert calls == ["life", "pong b'x'"]


# --- the probe: a bare ASGI application under a real daphne process ----------------------------

PROBE_LIMIT = 1 << 20  # the probe writer's bound on the bytes held for a socket
BURST = 100  # frames given to a connection in one loop turn
BIG = 32 << 20  # more than any loopback socket takes in one call: the rest is held by Twisted
SMALL_LIMIT = 1024  # the message size limit set on the probe's protocol by ``limit``


def daphne_shape(send: Any) -> dict[str, bool]:
    """Every daphne, autobahn and Twisted detail the writer relies on, each as a check."""
    from autobahn.websocket.protocol import WebSocketProtocol as AutobahnProtocol
    from daphne.server import Server as DaphneServer
    from daphne.ws_protocol import WebSocketProtocol
    from twisted.internet import abstract, tcp

    partial = isinstance(send, functools.partial) and bool(send.args)
    protocol: Any = send.args[0] if partial else None
    transport: Any = getattr(protocol, "transport", None)
    sock = getattr(transport, "socket", None)
    open_state = getattr(protocol, "STATE_OPEN", None)
    return {
        "send is partial(Server.handle_reply, protocol)": partial
        and getattr(send.func, "__func__", None) is DaphneServer.handle_reply,
        "the protocol is daphne's autobahn protocol": isinstance(protocol, WebSocketProtocol)
        and isinstance(protocol, AutobahnProtocol),
        "protocol.state is STATE_OPEN once accepted": isinstance(open_state, int)
        and protocol.state == open_state,
        "protocol._perMessageCompress is None (no compression with a default client)": (
            "_perMessageCompress" in vars(protocol) and protocol._perMessageCompress is None
        ),
        "protocol.sendData is callable": callable(getattr(protocol, "sendData", None)),
        "protocol.send_queue is a deque": isinstance(
            getattr(protocol, "send_queue", None), collections.deque
        ),
        "protocol.maxMessagePayloadSize is an int": isinstance(
            getattr(protocol, "maxMessagePayloadSize", None), int
        ),
        "protocol.maxFramePayloadSize is an int": isinstance(
            getattr(protocol, "maxFramePayloadSize", None), int
        ),
        "protocol.failByDrop is a bool": isinstance(getattr(protocol, "failByDrop", None), bool),
        "protocol.onPing is a method of the class": callable(getattr(protocol, "onPing", None))
        and "onPing" not in vars(protocol),
        "the transport is a Twisted TCP connection": isinstance(transport, tcp.Connection)
        and isinstance(transport, abstract.FileDescriptor),
        "transport.socket is a non-blocking socket": isinstance(sock, socket.socket)
        and sock.gettimeout() == 0.0,
        "transport.TLS is False": getattr(transport, "TLS", None) is False,
        "transport.dataBuffer is bytes": isinstance(
            getattr(transport, "dataBuffer", None), (bytes, bytearray, memoryview)
        ),
        "transport.offset is an int": isinstance(getattr(transport, "offset", None), int),
        "transport._tempDataLen is an int": isinstance(
            getattr(transport, "_tempDataLen", None), int
        ),
        "transport.disconnecting is false": hasattr(transport, "disconnecting")
        and not transport.disconnecting,
        "transport.write is callable": callable(getattr(transport, "write", None)),
        "transport_of finds the transport": transport is not None
        and transport_of(send) is transport,
        "transport_backlog counts what Twisted holds": transport is not None
        and transport_backlog(transport)
        == len(transport.dataBuffer) - transport.offset + transport._tempDataLen,
        "raw_writer gives a writer": callable(raw_writer(send, PROBE_LIMIT)),
    }


class CountingSocket:
    """A transport's socket that counts its ``send`` calls (a socket object takes no
    attributes of its own, so it is wrapped rather than patched)."""

    def __init__(self, sock: socket.socket, counts: dict[str, int]) -> None:
        self.sock = sock
        self.counts = counts

    def send(self, data: bytes) -> int:
        self.counts["socket.send"] += 1
        return self.sock.send(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


def count_writes(send: Any) -> dict[str, int]:
    """Count, from now on, every write to the connection: the socket's ``send``, the
    transport's ``write`` and the protocol's ``sendData`` (a writer made after this call
    sees them)."""
    protocol = send.args[0]
    transport = protocol.transport
    counts = {"socket.send": 0, "transport.write": 0, "protocol.sendData": 0}
    transport.socket = CountingSocket(transport.socket, counts)

    def counted(name: str, method: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            counts[name] += 1
            return method(*args, **kwargs)

        return call

    transport.write = counted("transport.write", transport.write)
    protocol.sendData = counted("protocol.sendData", protocol.sendData)
    return counts


def burst(writer: Any) -> None:
    """``BURST`` frames, as events of three rooms, in one go."""
    for n in range(BURST):
        assert writer(text_frame(json.dumps({"n": n, "room": n % 3}).encode()))


async def probe_application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers HTTP with 200 (readiness); on a socket, runs the commands the test sends."""
    if scope["type"] == "http":
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"probe"})
        return
    if scope["type"] != "websocket":
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    shape = daphne_shape(send)  # before anything below changes the protocol
    writer = raw_writer(send, PROBE_LIMIT)

    async def reply(answer: dict[str, Any]) -> None:
        payload = json.dumps(answer).encode()
        if writer is None:  # the shape says why; the test still gets it
            await send({"type": "websocket.send", "text": payload.decode()})
        else:
            assert writer(text_frame(payload))

    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return
        command = message.get("text")
        if command == "shape":
            # By now the handshake's answer has left: nothing is held for the socket.
            await reply(
                shape
                | {"transport_backlog is 0 at rest": transport_backlog(transport_of(send)) == 0}
            )
        elif command == "backlog" and writer is not None:
            transport: Any = transport_of(send)
            first = writer(text_frame(b"x" * BIG))
            backlog = transport_backlog(transport)
            refused = writer(text_frame(b"refused"))  # over the bound: not written
            later = raw_writer(send, 4 * BIG)
            assert later is not None
            report = {"first": first, "backlog": backlog, "refused": refused}
            later(text_frame(json.dumps(report).encode()))  # through sendData, after the rest
        elif command == "burst":
            counts = count_writes(send)
            counting = raw_writer(send, PROBE_LIMIT)
            assert counting is not None
            burst(counting)
            held = dict(counts)  # nothing written yet: it leaves at the end of the turn
            await asyncio.sleep(0)  # the turn ends
            turn = {"held": held, "written": dict(counts)}
            counting(text_frame(json.dumps(turn).encode()))
        elif command == "burst behind a backlog":
            counts = count_writes(send)
            counting = raw_writer(send, 4 * BIG)
            assert counting is not None
            counting(text_frame(b"x" * BIG))  # past GATHER_MAX: written at once, Twisted holds
            written = dict(counts)
            burst(counting)
            await asyncio.sleep(0)
            turn = {
                "big": written,
                "burst": {
                    k: counts[k] - written[k] for k in ("transport.write", "protocol.sendData")
                },
            }
            counting(text_frame(json.dumps(turn).encode()))
        elif command == "limit":
            limited = limit_message_size(send, SMALL_LIMIT)
            await reply({"limited": limited})
        elif command == "hook":
            assert writer is not None
            hooked = on_ping(send, lambda: writer(text_frame(b'{"life": true}')))
            await reply({"hooked": hooked})


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A daphne process serving ``probe_application``; yields its WebSocket URL."""
    port = free_port()
    log_path: Path = tmp_path_factory.mktemp("socket-writer") / "daphne.log"
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    with log_path.open("ab") as log:
        process = subprocess.Popen(  # noqa: S603 - daphne, on our own module
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
             "tests.chat.test_socket_writer:probe_application"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                url = f"http://127.0.0.1:{port}/"
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("daphne did not start: " + log_path.read_text()[-2000:])
            time.sleep(0.1)
        yield f"ws://127.0.0.1:{port}/"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


async def command(ws: Any, name: str) -> dict[str, Any]:
    await ws.send(name)
    return dict(json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT)))


@pytest.mark.timeout(60)
async def test_daphne_has_everything_the_writer_reaches_into(probe: str) -> None:
    # A default client (it offers compression, which the writer cannot frame for).
    async with websockets.connect(probe, open_timeout=TIMEOUT) as ws:
        shape = await command(ws, "shape")
    assert shape, "the probe reported nothing"
    assert [name for name, ok in shape.items() if not ok] == []


@pytest.mark.timeout(60)
async def test_the_writer_writes_directly_then_through_the_protocol_in_order(probe: str) -> None:
    async with websockets.connect(probe, open_timeout=TIMEOUT, max_size=2 * BIG) as ws:
        await ws.send("backlog")
        big = await asyncio.wait_for(ws.recv(), TIMEOUT)
        report = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    assert big == "x" * BIG  # framed by text_frame, whole, and before what followed it
    # The socket took part of it at once and Twisted held the rest, which the backlog counts;
    # past the bound the writer refused the next frame (it never arrived), and a frame written
    # behind the backlog went through the protocol, after it.
    assert report["first"] is True
    assert report["backlog"] > PROBE_LIMIT
    assert report["refused"] is False


@pytest.mark.timeout(60)
async def test_the_message_size_limit_closes_with_1009(probe: str) -> None:
    async with websockets.connect(probe, open_timeout=TIMEOUT) as ws:
        assert await command(ws, "limit") == {"limited": True}
        await ws.send("y" * (2 * SMALL_LIMIT))
        await asyncio.wait_for(ws.wait_closed(), TIMEOUT)
    assert ws.close_code == 1009


@pytest.mark.timeout(60)
async def test_a_client_ping_reaches_the_hook_before_its_pong(probe: str) -> None:
    async with websockets.connect(probe, open_timeout=TIMEOUT, ping_interval=None) as ws:
        assert await command(ws, "hook") == {"hooked": True}
        pong = await ws.ping(b"p")
        life = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        await asyncio.wait_for(pong, TIMEOUT)
    assert life == {"life": True}


async def test_the_writer_reaches_the_protocol_through_the_gateways_middleware() -> None:
    """Under daphne the consumer's ``send`` comes wrapped by Channels' session middleware: the
    writer unwraps it (``real_send``) to find daphne's ``partial``."""
    from chat.gateway.handshake import gateway_stack

    seen: list[Any] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(send)

    class Protocol:
        transport = object()

    async def handle_reply(protocol: Any, message: dict[str, Any]) -> None:
        return None

    daphne_send = functools.partial(handle_reply, Protocol())
    scope = {"type": "websocket", "path": "/ws/v1/", "headers": [], "query_string": b""}
    await gateway_stack(app)(scope, None, daphne_send)
    assert len(seen) == 1
    assert seen[0] is not daphne_send  # wrapped, as the real stack does
    assert transport_of(seen[0]) is Protocol.transport


@pytest.mark.timeout(60)
async def test_what_a_connection_is_given_in_one_turn_leaves_in_one_socket_write(
    probe: str,
) -> None:
    async with websockets.connect(probe, open_timeout=TIMEOUT, ping_interval=None) as ws:
        await ws.send("burst")
        frames = [json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT)) for _ in range(BURST)]
        report = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    assert [frame["n"] for frame in frames] == list(range(BURST))  # whole, and in order
    assert set(report["held"].values()) == {0}
    assert report["written"] == {"socket.send": 1, "transport.write": 0, "protocol.sendData": 0}


@pytest.mark.timeout(60)
async def test_behind_a_backlog_a_turn_goes_through_the_protocol_in_one_write(probe: str) -> None:
    async with websockets.connect(
        probe, open_timeout=TIMEOUT, ping_interval=None, max_size=2 * BIG
    ) as ws:
        await ws.send("burst behind a backlog")
        big = await asyncio.wait_for(ws.recv(), TIMEOUT)
        frames = [json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT)) for _ in range(BURST)]
        report = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    assert big == "x" * BIG
    assert [frame["n"] for frame in frames] == list(range(BURST))
    # The big frame went to the socket at once, what it did not take to Twisted; the burst
    # then queued behind it through the protocol, in one call.
    assert report["big"]["socket.send"] == 1
    assert report["big"]["transport.write"] == 1
    assert report["burst"] == {"transport.write": 1, "protocol.sendData": 1}


# --- the writer on a stand-in protocol: gathering, the bound, closing ----------------------------


class FakeSocket:
    def __init__(self, takes: int | None = None) -> None:
        self.sent: list[bytes] = []
        self.takes = takes  # bytes it takes per call (None: all)

    def send(self, data: bytes) -> int:
        taken = len(data) if self.takes is None else min(self.takes, len(data))
        self.sent.append(bytes(data[:taken]))
        return taken


class FakeTransport:
    TLS = False
    disconnecting = False

    def __init__(self, sock: FakeSocket) -> None:
        self.socket = sock
        self.dataBuffer = b""
        self.offset = 0
        self._tempDataLen = 0
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)
        self._tempDataLen += len(data)


class FakeProtocol:
    STATE_OPEN = 3

    def __init__(self, sock: FakeSocket) -> None:
        self.state = self.STATE_OPEN
        self.transport = FakeTransport(sock)
        self.send_queue: collections.deque[Any] = collections.deque()
        self._perMessageCompress = None
        self.sent_data: list[bytes] = []

    def sendData(self, data: bytes) -> None:
        self.sent_data.append(data)
        self.transport.write(data)


def fake_writer(limit: int = 1000, takes: int | None = None) -> tuple[DirectWriter, FakeProtocol]:
    protocol = FakeProtocol(FakeSocket(takes))
    writer = raw_writer(functools.partial(lambda protocol, message: None, protocol), limit)
    assert isinstance(writer, DirectWriter)
    return writer, protocol


async def test_frames_of_one_turn_leave_together_and_the_next_turn_writes_again() -> None:
    writer, protocol = fake_writer()
    sock = protocol.transport.socket
    for frame in (b"a", b"b", b"c"):
        assert writer(frame)
    assert sock.sent == []
    assert writer.pending == 3
    await asyncio.sleep(0)
    assert sock.sent == [b"abc"]
    assert writer.pending == 0
    writer(b"d")
    await asyncio.sleep(0)
    assert sock.sent == [b"abc", b"d"]


async def test_one_callback_per_turn_writes_every_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = asyncio.get_running_loop()
    writers = [fake_writer()[0] for _ in range(3)]
    scheduled: list[Any] = []
    call_soon = loop.call_soon

    def counting_call_soon(callback: Any, *args: Any, **kwargs: Any) -> Any:
        scheduled.append(callback)
        return call_soon(callback, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(loop, "call_soon", counting_call_soon)
        for writer in writers:
            writer(b"x")
            writer(b"y")
    assert len(scheduled) == 1
    await asyncio.sleep(0)
    assert [w.protocol.transport.socket.sent for w in writers] == [[b"xy"]] * 3


async def test_a_turn_past_the_gathering_bound_is_written_at_once() -> None:
    writer, protocol = fake_writer(limit=10 * GATHER_MAX)
    chunk = b"z" * (GATHER_MAX // 2)
    writer(chunk)
    writer(chunk)  # reaches GATHER_MAX: out now, not at the end of the turn
    assert protocol.transport.socket.sent == [chunk + chunk]
    writer(b"tail")
    await asyncio.sleep(0)
    assert protocol.transport.socket.sent == [chunk + chunk, b"tail"]


async def test_the_bound_counts_the_bytes_held_and_those_gathered_in_the_turn() -> None:
    writer, protocol = fake_writer(limit=100, takes=10)
    writer(b"1" * 50)
    await asyncio.sleep(0)  # the socket took 10 bytes: Twisted holds 40
    assert protocol.transport.written == [b"1" * 40]
    assert writer(b"2" * 30)  # 40 held + 30 = 70
    assert not writer(b"3" * 31)  # 40 + 30 gathered + 31 > 100: a client that stopped reading
    assert writer(b"4" * 30)  # exactly the bound
    await asyncio.sleep(0)
    assert protocol.sent_data == [b"2" * 30 + b"4" * 30]  # behind the backlog, in order


async def test_nothing_gathered_is_written_once_the_connection_closed() -> None:
    writer, protocol = fake_writer()
    writer(b"late")
    protocol.state = 4  # closing
    assert writer(b"later")  # taken, and dropped: the connection is going
    await asyncio.sleep(0)
    assert protocol.transport.socket.sent == []
    assert protocol.transport.written == []


# --- the consumer over the writer ---------------------------------------------------------------


async def test_frames_of_the_turn_go_out_before_the_close_frame() -> None:
    from chat.gateway.consumer import GatewayConsumer

    writer, protocol = fake_writer()
    consumer = GatewayConsumer()
    consumer.raw = writer
    order: list[str] = []

    async def close(code: int | bool | None = None, reason: str | None = None) -> None:
        order.extend(f"sent {data!r}" for data in protocol.transport.socket.sent)
        order.append(f"close {code}")

    consumer.close = close
    consumer.closed = False
    frame = b'{"type":"error"}'
    consumer.enqueue(frame)
    await consumer._close(4429)
    assert order == [f"sent {text_frame(frame)!r}", "close 4429"]


async def test_bytes_gathered_for_the_turn_count_as_pressure(settings: Any) -> None:
    from chat.gateway.consumer import GatewayConsumer

    writer, protocol = fake_writer(limit=10_000)
    consumer = GatewayConsumer()
    consumer.raw, consumer.transport, consumer.queued_bytes = writer, protocol.transport, 0
    consumer.closed = False
    consumer.enqueue(b"p" * 500)
    assert consumer._pressure() == len(text_frame(b"p" * 500))
    await asyncio.sleep(0)
    assert consumer._pressure() == 0
