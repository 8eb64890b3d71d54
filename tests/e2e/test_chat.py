"""End to end: three users chat in a room over a real server, with the `websockets` client."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.e2e.conftest import Client, Server, api

TIMEOUT = 10


async def test_three_users_chat_live_with_sync_and_ban(server: Server, room: Any) -> None:
    room_id, slug, users = room
    alice, bob, carol = (Client(server, uid, token) for uid, token in users)
    for client in (alice, bob, carol):
        await client.open()
        await client.next("synced")

    # Send, ack, receipt by all.
    await alice.send(
        {
            "type": "message.send",
            "room": room_id,
            "client_msg_id": "a-1",
            "body": "hello @" + "nobody",
            "ref": "1",
        }
    )
    ack = await alice.next("ack")
    assert ack["seq"] == 1
    for client in (alice, bob, carol):
        frame = await client.next("message.new")
        assert (frame["seq"], frame["message"]["body"]) == (1, "hello @nobody")

    # Idempotent resend: the same message, no second message.new.
    await alice.send(
        {
            "type": "message.send",
            "room": room_id,
            "client_msg_id": "a-1",
            "body": "different",
            "ref": "2",
        }
    )
    again = await alice.next("ack")
    assert (again["message_id"], again["seq"]) == (ack["message_id"], 1)
    assert await bob.events(room_id) == []

    # Edit, react, delete propagate in seq order.
    await alice.send({"type": "message.edit", "message_id": ack["message_id"], "body": "hi"})
    await alice.next("ack")
    await bob.send({"type": "reaction.add", "message_id": ack["message_id"], "emoji": "🎉"})
    await bob.next("ack")
    await alice.send({"type": "message.delete", "message_id": ack["message_id"]})
    before: list[dict[str, Any]] = []
    deleted = await carol.next("message.deleted", before)
    seen = [(f["type"], f["seq"]) for f in before if f.get("room") == room_id and "seq" in f]
    assert [*seen, ("message.deleted", deleted["seq"])] == [
        ("message.edited", 2),
        ("reaction.added", 3),
        ("message.deleted", 4),
    ]

    # Carol drops; bob posts; carol comes back and syncs exactly what she missed, in order.
    await carol.ws.close()
    for n in range(5):
        await bob.send(
            {
                "type": "message.send",
                "room": room_id,
                "client_msg_id": f"b-{n}",
                "body": f"while away {n}",
            }
        )
        await bob.next("ack")
    await carol.open(sync={room_id: 4})
    replayed: list[dict[str, Any]] = []
    synced = await carol.next("synced", replayed)
    assert synced["rooms"] == {str(room_id): 9}
    assert [f["seq"] for f in replayed if f.get("room") == room_id] == [5, 6, 7, 8, 9]
    assert [f["message"]["body"] for f in replayed if f.get("type") == "message.new"] == [
        f"while away {n}" for n in range(5)
    ]

    # A ban: room.removed, then nothing more of the room.
    owner_token = users[0][1]
    status, _ = api(
        server,
        "POST",
        f"/api/v1/communities/{slug}/bans/",
        {"user_id": carol.user_id, "reason": "e2e"},
        owner_token,
    )
    assert status == 201
    assert await carol.next("room.removed") == {
        "type": "room.removed",
        "room": room_id,
        "reason": "banned",
    }
    await bob.send(
        {
            "type": "message.send",
            "room": room_id,
            "client_msg_id": "b-after",
            "body": "after the ban",
        }
    )
    await bob.next("ack")
    await alice.next("message.new")
    assert [f for f in await carol.events(room_id) if f["type"] == "message.new"] == []
    for client in (alice, bob, carol):
        await client.ws.close()


async def test_bad_input_over_the_wire(server: Server, room: Any) -> None:
    _, _, users = room
    uid, token = users[1]
    client = Client(server, uid, token)
    neighbour = Client(server, *users[2])
    await client.open()
    await neighbour.open()
    for raw in ["nope", "[]", '{"type": "warp"}', '{"type": "message.send"}']:
        await client.ws.send(raw)
        assert (await client.next("error"))["code"] == "bad_frame"
    await client.send(
        {"type": "message.send", "room": 10**9, "client_msg_id": "x", "body": "y", "ref": "foreign"}
    )
    assert (await client.next("error"))["code"] == "not_found"
    await client.ws.send("x" * (70 * 1024))
    await asyncio.wait_for(client.ws.wait_closed(), TIMEOUT)
    assert client.ws.close_code == 1009
    await neighbour.send({"type": "ping", "ref": "n"})
    assert (await neighbour.next("pong"))["ref"] == "n"
    await neighbour.ws.close()

    ticket = await asyncio.to_thread(server.ticket, token)
    with pytest.raises(InvalidStatus) as refused:
        await websockets.connect(f"{server.ws}?ticket={ticket}", origin="https://evil.example")
    assert refused.value.response.status_code == 403
    first = await websockets.connect(f"{server.ws}?ticket={ticket}")
    assert json.loads(await first.recv())["type"] == "hello"
    replay = await websockets.connect(f"{server.ws}?ticket={ticket}")
    with pytest.raises(ConnectionClosed) as replayed:
        await asyncio.wait_for(replay.recv(), TIMEOUT)
    assert replayed.value.rcvd is not None
    assert replayed.value.rcvd.code == 4401
    await first.close()
