"""The AsyncAPI document is served, complete, and true to the frames the gateway sends."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pytest
from django.test import Client

from chat.protocol import CLIENT_FRAMES, SERVER_FRAMES
from tests.chat.gateway_helpers import connect, send, until
from tests.conftest import build_world


def schema_for(
    document: dict[str, Any], frame_type: str, side: str, *, strict: bool = False
) -> dict[str, Any]:
    """The frame's schema; ``strict`` also refuses any field the document does not list, at
    every level (the published schemas leave server objects open to new fields)."""
    name = f"{side}.{frame_type}"
    ref = document["components"]["messages"][name]["payload"]["$ref"]
    components = copy.deepcopy(document["components"])
    if strict:
        for schema in components["schemas"].values():
            if "properties" in schema:
                schema["additionalProperties"] = False
    return {"$ref": ref, "components": components}


@pytest.fixture
def document(db: Any) -> dict[str, Any]:
    response = Client().get("/api/asyncapi.json")
    assert response.status_code == 200
    return dict(response.json())


def test_every_frame_type_is_documented(document: dict[str, Any]) -> None:
    assert document["asyncapi"].startswith("3.")
    assert document["channels"]["gateway"]["address"] == "/ws/v1/"
    documented = set(document["components"]["messages"])
    expected = {f"client.{f.__struct_config__.tag}" for f in CLIENT_FRAMES}
    expected |= {f"server.{f.__struct_config__.tag}" for f in SERVER_FRAMES}
    assert documented == expected
    receive = document["operations"]["clientFrames"]["messages"]
    assert len(receive) == len(CLIENT_FRAMES)


def test_rooms_and_messages_have_their_schema(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    room = {"$ref": "#/components/schemas/Room"}
    message = {"$ref": "#/components/schemas/Message"}
    assert schemas["Hello"]["properties"]["rooms"]["items"] == room
    assert schemas["RoomAdded"]["properties"]["info"] == room
    assert schemas["RoomUpdated"]["properties"]["info"] == room
    assert schemas["MessageNew"]["properties"]["message"] == message
    assert schemas["MessageEdited"]["properties"]["message"] == message
    assert set(schemas["Room"]["required"]) == {
        "id",
        "community",
        "name",
        "topic",
        "private",
        "slow_mode_s",
        "head_seq",
        "unread",
        "created_at",
    }
    assert set(schemas["Message"]["required"]) == {
        "id",
        "room",
        "seq",
        "event_seq",
        "author",
        "body",
        "reply_to",
        "mentions",
        "reactions",
        "created_at",
        "edited_at",
        "deleted",
    }
    assert schemas["Message"]["properties"]["author"] == {"$ref": "#/components/schemas/User"}
    reactions = schemas["Message"]["properties"]["reactions"]["items"]
    assert reactions == {"$ref": "#/components/schemas/Reaction"}
    assert set(schemas["Reaction"]["required"]) == {"emoji", "count", "me"}
    assert "room" in schemas["Ack"]["properties"]


def test_client_frame_schemas_refuse_unknown_fields(document: dict[str, Any]) -> None:
    schema = schema_for(document, "message.send", "client")
    jsonschema.validate(
        {"type": "message.send", "room": 1, "client_msg_id": "a", "body": "b"}, schema
    )
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            {"type": "message.send", "room": 1, "client_msg_id": "a", "body": "b", "extra": 1},
            schema,
        )


@pytest.mark.django_db(transaction=True)
async def test_the_frames_the_gateway_sends_match_their_schemas() -> None:
    from asgiref.sync import sync_to_async

    from communities.services.members import community_join

    document = (await sync_to_async(Client().get)("/api/asyncapi.json")).json()
    world = await sync_to_async(build_world)("public")
    room = world.general.pk
    comm = await connect(world.users["member"])
    other = await connect(world.users["admin"], sync={})
    newcomer = await connect(world.users["outsider"], sync={})
    frames: list[dict[str, Any]] = [comm.hello]
    await send(comm, {"type": "sync", "rooms": {str(room): 0}, "ref": "s"})
    frames.append(await until(comm, "synced"))
    await send(
        comm, {"type": "message.send", "room": room, "client_msg_id": "x", "body": "hi", "ref": "m"}
    )
    frames.append(await until(comm, "ack"))
    frames.append(await until(comm, "message.new"))
    message_id = frames[-1]["message"]["id"]
    await send(comm, {"type": "reaction.add", "message_id": message_id, "emoji": "👍"})
    frames.append(await until(comm, "reaction.added"))
    await send(comm, {"type": "message.edit", "message_id": message_id, "body": "hey"})
    frames.append(await until(comm, "message.edited"))
    await send(comm, {"type": "read", "room": room, "seq": 2, "ref": "r"})
    while (ack := await until(comm, "ack")).get("ref") != "r":
        frames.append(ack)  # of the reaction and the edit
    assert ack["room"] == room
    frames.append(ack)
    await send(comm, {"type": "message.delete", "message_id": message_id})
    frames.append(await until(comm, "message.deleted"))
    await send(comm, {"type": "typing", "room": room})
    frames.append(await until(other, "typing"))
    await send(comm, {"type": "nope"})
    frames.append(await until(comm, "error"))
    await send(comm, {"type": "ping", "ref": "p"})
    frames.append(await until(comm, "pong"))
    await sync_to_async(community_join)(actor=world.users["outsider"], community=world.community)
    frames.append(await until(newcomer, "room.added"))
    for frame in frames:
        jsonschema.validate(frame, schema_for(document, frame["type"], "server", strict=True))
    await comm.disconnect()
    await other.disconnect()
    await newcomer.disconnect()
