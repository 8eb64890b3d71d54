"""Random frames never crash the gateway: every one gets an answer or nothing, never an
``internal`` error (the mark of an unhandled exception, which ``Session.handle`` turns into an
answer), the connection stays open and keeps answering, and the neighbour's is unaffected."""

from __future__ import annotations

import json
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chat.protocol import CLIENT_FRAMES
from tests.chat.gateway_helpers import connect, send, until
from tests.conftest import World, build_world

pytestmark = pytest.mark.django_db(transaction=True)

TYPES = [frame.__struct_config__.tag for frame in CLIENT_FRAMES] + ["", "message", "x" * 70]
FIELDS = [
    "room",
    "client_msg_id",
    "body",
    "reply_to",
    "message_id",
    "emoji",
    "seq",
    "rooms",
    "ref",
    "type",
    "extra",
]
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=50),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
frames = st.one_of(
    st.text(min_size=1, max_size=200),
    json_values.map(lambda value: json.dumps(value)),
    st.fixed_dictionaries(
        {"type": st.sampled_from(TYPES)},
        optional={name: json_values for name in FIELDS if name != "type"},
    ).map(lambda value: json.dumps(value)),
)


@pytest.fixture
def world() -> World:
    return build_world("public")


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(batch=st.lists(frames, min_size=1, max_size=8))
def test_random_frames_never_crash_the_gateway(world: World, batch: list[str]) -> None:
    async def run() -> None:
        comm = await connect(world.users["member"], sync={})
        neighbour = await connect(world.users["admin"], sync={})
        for raw in batch:
            await comm.send_to(text_data=raw)
        await send(comm, {"type": "ping", "ref": "alive"})
        answers: list[dict[str, Any]] = []
        while (await until(comm, "pong", answers)).get("ref") != "alive":
            pass  # a random frame may have been a valid ping of its own
        assert {a["type"] for a in answers} <= {
            "error",
            "ack",
            "message.new",
            "message.edited",
            "message.deleted",
            "reaction.added",
            "reaction.removed",
            "read",
            "synced",
            "presence",
            "typing",
        }
        # Session.handle answers any exception: only the code tells a refusal from a bug.
        assert [a for a in answers if a["type"] == "error" and a["code"] == "internal"] == []
        await send(neighbour, {"type": "ping", "ref": "n"})
        assert (await until(neighbour, "pong"))["ref"] == "n"
        await comm.disconnect()
        await neighbour.disconnect()

    async_to_sync(run)()
