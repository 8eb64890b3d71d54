"""What the gateway reaches of daphne, autobahn and Twisted beyond ASGI
(``chat.gateway.socket_writer``), checked against the real thing.

A probe ASGI application runs under a real daphne process and reports, over its own sockets,
every attribute and method the writer relies on; the writer then writes to a real socket, both
directly and, behind a backlog, through the protocol, in order. An upgrade of daphne, autobahn or
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
