"""A client that stops reading is closed (4429) once its buffer passes the bound; the other
members of the room keep receiving everything."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
from typing import Any

import pytest

from tests.e2e.conftest import Client, Server, api

MESSAGES = 1200
BODY = "z" * 4000


def stalled_socket(server: Server, ticket: str) -> socket.socket:
    """A WebSocket handshake by hand, on a socket with a tiny receive buffer, never read."""
    host, port = server.base.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET /ws/v1/?ticket={ticket} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    sock.sendall(request.encode())
    assert b"101" in sock.recv(1024).split(b"\r\n")[0]
    return sock


def masked(text: str) -> bytes:
    payload = text.encode()
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + mask + body


@pytest.mark.timeout(300)  # 1,200 posts over REST: a loaded machine needs more than the default
async def test_a_stalled_reader_is_closed_and_others_get_everything(
    server: Server, room: Any
) -> None:
    room_id, _, users = room
    (_, sender_token), (slow_id, slow_token), (watch_id, watch_token) = users
    watcher = Client(server, watch_id, watch_token)
    await watcher.open()
    await watcher.next("synced")
    ticket = await asyncio.to_thread(server.ticket, slow_token)
    sock = await asyncio.to_thread(stalled_socket, server, ticket)
    sock.sendall(masked('{"type":"sync","rooms":{}}'))

    def post_all() -> None:
        for n in range(MESSAGES):
            status, _ = api(
                server,
                "POST",
                f"/api/v1/rooms/{room_id}/messages",
                {"body": BODY, "client_msg_id": f"s{n}"},
                sender_token,
            )
            assert status == 201

    async def watch() -> list[int]:
        seqs: list[int] = []
        while len(seqs) < MESSAGES:
            seqs.append((await watcher.next("message.new"))["seq"])
        return seqs

    async def keep_alive() -> None:
        """The watcher is a well-behaved client: it shows life within every heartbeat."""
        while True:
            await asyncio.sleep(5)
            await watcher.send({"type": "ping", "ref": "alive"})

    # The watcher reads while the messages are posted; the stalled socket never does.
    alive = asyncio.create_task(keep_alive())
    try:
        _, seqs = await asyncio.gather(asyncio.to_thread(post_all), watch())
    finally:
        alive.cancel()
    assert seqs == list(range(1, MESSAGES + 1))

    # The server gave up on the stalled connection: once the presence grace is over, the
    # user is told offline (docs/protocol.md, "Presence") and is no longer online.
    while True:
        frame = await watcher.next("presence")
        if frame["user"]["id"] == slow_id and frame["status"] == "offline":
            break
    status, presence = api(server, "GET", f"/api/v1/rooms/{room_id}/presence", None, watch_token)
    assert status == 200
    assert slow_id not in presence["online"]
    assert watch_id in presence["online"]
    sock.close()
    await watcher.ws.close()
