"""Client text the chat stores: client_msg_id, NUL anywhere, reactions that must be emoji
(docs/api.md, "Text fields" and "Reactions"), the same over REST and the socket. Run on
PostgreSQL (scaled mode) too, which refuses NUL in text: each case must be a clean ``invalid``,
never ``internal``."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from channels.db import database_sync_to_async
from django.conf import settings

from chat.models import Message, Reaction, Report
from chat.services.reports import report_create
from sphere.errors import Invalid
from tests.chat.conftest import post
from tests.chat.gateway_helpers import connect, send, until
from tests.conftest import World, build_world

BAD_CLIENT_MSG_IDS = ["a\x00b", "\x00", "tab\there", "bell\x07", "del\x7f", "c1\x85", "nl\n"]
BAD_EMOJI = [
    "a/b",
    "thumbsup",
    ":thumbs_up:",
    "<script>",
    "👍👍",
    "👍 ",
    "🏽",  # a skin tone alone is a component, not an emoji
    "\x00",
    "👍\x00",
    "x" * 64,
]
GOOD_EMOJI = ["👍", "👍🏽", "👨\u200d👩\u200d👧", "🇫🇷", "❤️", "#️⃣"]


def reaction_url(message: Any, emoji: str) -> str:
    return f"/api/v1/messages/{message.pk}/reactions/{quote(emoji, safe='')}/"


# --- REST --------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("client_msg_id", BAD_CLIENT_MSG_IDS)
def test_rest_refuses_a_client_msg_id_with_control_characters(
    world: World, client_msg_id: str
) -> None:
    response = world.client("member").post(
        f"/api/v1/rooms/{world.general.pk}/messages",
        {"body": "hello", "client_msg_id": client_msg_id},
        format="json",
    )
    body = response.json()
    assert (response.status_code, body["code"]) == (400, "invalid"), body
    assert "client_msg_id" in body["fields"]
    assert not Message.objects.exists()


@pytest.mark.django_db
def test_rest_accepts_printable_client_msg_ids(world: World) -> None:
    for n, client_msg_id in enumerate(["uuid-1f0e", "with space", "ünï©ødé", "x" * 64]):
        response = world.client("member").post(
            f"/api/v1/rooms/{world.general.pk}/messages",
            {"body": f"m{n}", "client_msg_id": client_msg_id},
            format="json",
        )
        assert response.status_code == 201, response.json()


@pytest.mark.django_db
def test_rest_refuses_nul_in_bodies_and_reasons(world: World) -> None:
    client = world.client("member")
    message = post(world.users["member"], world.general)
    posted = client.post(
        f"/api/v1/rooms/{world.general.pk}/messages",
        {"body": "a\x00b", "client_msg_id": "nul-body"},
        format="json",
    )
    edited = client.patch(f"/api/v1/messages/{message.pk}/", {"body": "a\x00b"}, format="json")
    reported = client.post(
        f"/api/v1/messages/{message.pk}/report", {"reason": "a\x00b"}, format="json"
    )
    for response in (posted, edited, reported):
        assert (response.status_code, response.json()["code"]) == (400, "invalid")
    assert Message.objects.get(pk=message.pk).body == "hello"
    assert not Report.objects.exists()


@pytest.mark.django_db
def test_the_report_service_refuses_nul_itself(world: World) -> None:
    message = post(world.target, world.general)
    with pytest.raises(Invalid) as refused:
        report_create(actor=world.users["member"], message=message, reason="rude\x00")
    assert refused.value.fields == {"reason": ["No NUL or surrogate characters."]}


@pytest.mark.django_db
@pytest.mark.parametrize("emoji", [e for e in BAD_EMOJI if "/" not in e])
def test_rest_refuses_what_is_not_one_emoji(world: World, emoji: str) -> None:
    message = post(world.users["admin"], world.general)
    response = world.client("member").put(reaction_url(message, emoji))
    body = response.json()
    assert (response.status_code, body["code"]) == (400, "invalid"), body
    if "\x00" not in emoji:  # NUL in a path is refused before any view, naming no field
        assert "emoji" in body["fields"]
    assert not Reaction.objects.exists()


@pytest.mark.django_db
def test_rest_accepts_emoji_with_skin_tones_flags_and_zwj_sequences(world: World) -> None:
    message = post(world.users["admin"], world.general)
    client = world.client("member")
    for emoji in GOOD_EMOJI:
        assert client.put(reaction_url(message, emoji)).status_code == 200, emoji
    assert sorted(Reaction.objects.values_list("emoji", flat=True)) == sorted(GOOD_EMOJI)


@pytest.mark.django_db
def test_a_reaction_stored_before_emoji_were_required_still_shows_and_comes_off(
    world: World,
) -> None:
    message = post(world.users["admin"], world.general)
    Reaction.objects.create(message=message, user=world.users["member"], emoji="thumbsup")
    client = world.client("member")
    history = client.get(f"/api/v1/rooms/{world.general.pk}/messages").json()["results"]
    assert history[0]["reactions"] == [{"emoji": "thumbsup", "count": 1, "me": True}]
    # Who reacted with it can still be listed before it comes off.
    who = client.get(reaction_url(message, "thumbsup")).json()["results"]
    assert [user["username"] for user in who] == [world.users["member"].username]
    assert client.delete(reaction_url(message, "thumbsup")).status_code == 204
    assert not Reaction.objects.exists()
    # It cannot be added again, and removing what is not there is 404 as usual.
    assert client.put(reaction_url(message, "thumbsup")).status_code == 400
    assert client.delete(reaction_url(message, "thumbsup")).status_code == 404


# --- Socket ------------------------------------------------------------------------------------


@pytest.fixture
def live_world(transactional_db: Any) -> World:
    return build_world("public")


@pytest.mark.django_db(transaction=True)
async def test_socket_refuses_bad_client_msg_ids_and_nul_bodies(live_world: World) -> None:
    world = live_world
    room = world.general.pk
    sock = await connect(world.users["member"], sync={})
    frames = [
        {"client_msg_id": client_msg_id, "body": "hello"} for client_msg_id in BAD_CLIENT_MSG_IDS
    ]
    frames.append({"client_msg_id": "good-id", "body": "nul\x00inside"})
    for n, fields in enumerate(frames):
        await send(sock, {"type": "message.send", "room": room, "ref": f"s{n}", **fields})
        error = await until(sock, "error")
        assert (error["code"], error["ref"]) == ("invalid", f"s{n}"), error
    await send(sock, {"type": "message.send", "room": room, "client_msg_id": "ok", "body": "hi"})
    assert (await until(sock, "ack"))["seq"] == 1  # nothing refused was stored
    await sock.disconnect()
    stored = await database_sync_to_async(lambda: list(Message.objects.values_list("body")))()
    assert stored == [("hi",)]


@pytest.mark.django_db(transaction=True)
async def test_socket_refuses_nul_in_an_edit_and_bad_emoji(live_world: World) -> None:
    world = live_world
    message = await database_sync_to_async(post)(world.users["member"], world.general)
    sock = await connect(world.users["member"], sync={})
    await send(
        sock, {"type": "message.edit", "message_id": message.pk, "body": "a\x00", "ref": "e"}
    )
    assert (await until(sock, "error"))["code"] == "invalid"
    for n, emoji in enumerate(BAD_EMOJI):
        frame = {"type": "reaction.add", "message_id": message.pk, "emoji": emoji, "ref": f"a{n}"}
        await send(sock, frame)
        error = await until(sock, "error")
        assert (error["code"], error["ref"]) == ("invalid", f"a{n}"), (emoji, error)
    # A removal looks up what may have been stored before emoji were required: a bad value is
    # invalid only when it could never have been stored.
    for emoji, code in [("\x00", "invalid"), ("👍 ", "invalid"), ("thumbsup", "not_found")]:
        await send(sock, {"type": "reaction.remove", "message_id": message.pk, "emoji": emoji})
        assert (await until(sock, "error"))["code"] == code, emoji
    for emoji in GOOD_EMOJI:
        await send(sock, {"type": "reaction.add", "message_id": message.pk, "emoji": emoji})
        assert (await until(sock, "ack"))["message_id"] == message.pk
    await sock.disconnect()
    emoji_stored = await database_sync_to_async(
        lambda: sorted(Reaction.objects.values_list("emoji", flat=True))
    )()
    assert emoji_stored == sorted(GOOD_EMOJI)
    body = await database_sync_to_async(lambda: Message.objects.get(pk=message.pk).body)()
    assert body == "hello"


# --- Settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", ["ten/10s", "10/10parsecs", "0/10s", "10"])
def test_a_malformed_rate_setting_stops_the_start_naming_it(rate: str) -> None:
    from django.core.exceptions import ImproperlyConfigured
    from django.test import override_settings

    from chat.apps import _check_rates

    _check_rates()  # the defaults are good
    bad = {**settings.ACT_RATES, "edit": rate}
    with override_settings(ACT_RATES=bad), pytest.raises(ImproperlyConfigured, match="EDITS"):
        _check_rates()
