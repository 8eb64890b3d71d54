"""What the gateway reaches of daphne's WebSocket protocol, on a real daphne server: a
WebSocket ping is life to the heartbeat, though daphne answers it without telling the app."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
import websockets
from websockets.protocol import State

from chat.gateway_io import on_ping
from tests.e2e.conftest import Server, own_database

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
