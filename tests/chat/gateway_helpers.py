"""Helpers for socket tests: connect with a ticket, read frames, wait for a frame type."""

from __future__ import annotations

from typing import Any

import orjson
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from communities.services.accounts import ws_ticket_issue
from sphere.asgi import application

ORIGIN = (b"origin", b"http://127.0.0.1")
TIMEOUT = 5


async def ticket(user: Any) -> str:
    value, _ = await database_sync_to_async(ws_ticket_issue)(user=user)
    return value


async def connect(user: Any, *, sync: dict[str, int] | None = None, **kw: Any) -> Any:
    """A connected, ``hello``-read socket of ``user``; with ``sync``, also synced."""
    comm = WebsocketCommunicator(application, f"/ws/v1/?ticket={await ticket(user)}", **kw)
    connected, _ = await comm.connect(timeout=TIMEOUT)
    assert connected
    hello = await recv(comm)
    assert hello["type"] == "hello"
    comm.hello = hello
    if sync is not None:
        await send(comm, {"type": "sync", "rooms": sync, "ref": "s0"})
        await until(comm, "synced")
    return comm


async def send(comm: Any, frame: dict[str, Any]) -> None:
    await comm.send_to(text_data=orjson.dumps(frame).decode())


async def recv(comm: Any) -> dict[str, Any]:
    message = await comm.receive_output(TIMEOUT)
    assert message["type"] == "websocket.send", message
    return dict(orjson.loads(message["text"]))


async def until(comm: Any, type_: str, collected: list[Any] | None = None) -> dict[str, Any]:
    """The next frame of ``type_``. Frames before it go into ``collected`` when given (the
    ordered stream), else they wait in ``comm.pool`` for a later call: an event may arrive
    before the ``ack`` of the send that caused it."""
    pool: list[dict[str, Any]] = comm.__dict__.setdefault("pool", [])
    for index, frame in enumerate(pool):
        if frame["type"] == type_:
            if collected is not None:
                collected.extend(pool[:index])
                del pool[: index + 1]
            else:
                del pool[index]
            return frame
    if collected is not None:
        collected.extend(pool)
        pool.clear()
    while True:
        frame = await recv(comm)
        if frame["type"] == type_:
            return frame
        (collected if collected is not None else pool).append(frame)


async def quiet(comm: Any, *types: str) -> None:
    """Assert that no frame of ``types`` is waiting: a ping's pong comes after anything the
    server had already queued for this connection."""
    await send(comm, {"type": "ping", "ref": "quiet"})
    before: list[dict[str, Any]] = []
    await until(comm, "pong", before)
    assert not [f for f in before if f["type"] in types], before


async def closed_with(comm: Any) -> int:
    message = await comm.receive_output(TIMEOUT)
    while message["type"] == "websocket.send":
        message = await comm.receive_output(TIMEOUT)
    assert message["type"] == "websocket.close", message
    return int(message.get("code", 1000))
