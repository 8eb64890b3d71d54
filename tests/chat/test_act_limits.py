"""Per-user rates of reactions, edits, deletions, reads and reports, and mutes on reactions
(docs/api.md, "Rate limits" and "Mutes"), over REST and the socket, which share them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import quote

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from chat.models import Message, Reaction, ReadMarker, Report
from communities.models import Membership
from sphere.formats import iso
from tests.chat.conftest import post
from tests.chat.gateway_helpers import connect, send, until
from tests.conftest import World, build_world


def limit(settings: Any, act: str, rate: str) -> None:
    settings.ACT_RATES = {**settings.ACT_RATES, act: rate}


def reaction_url(message: Any, emoji: str) -> str:
    return f"/api/v1/messages/{message.pk}/reactions/{quote(emoji)}/"


def mute(world: World, standing: str, minutes: int = 10) -> Any:
    until_ = timezone.now() + timedelta(minutes=minutes)
    Membership.objects.filter(community=world.community, user=world.users[standing]).update(
        muted_until=until_
    )
    return until_


def assert_rate_limited(response: Any) -> None:
    assert response.status_code == 429, response.content
    assert response.json()["code"] == "rate_limited"
    assert 1 <= int(response["Retry-After"]) <= 60


# --- REST --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_reactions_are_rated_per_user_adds_and_removes_together(
    world: World, settings: Any
) -> None:
    limit(settings, "reaction", "3/min")
    message = post(world.users["admin"], world.general)
    client = world.client("member")
    assert client.put(reaction_url(message, "👍")).status_code == 200
    assert client.delete(reaction_url(message, "👍")).status_code == 204
    assert client.put(reaction_url(message, "🎉")).status_code == 200
    assert_rate_limited(client.put(reaction_url(message, "👍")))
    assert_rate_limited(client.delete(reaction_url(message, "🎉")))
    assert list(Reaction.objects.values_list("emoji", flat=True)) == ["🎉"]  # nothing changed
    # Another user has a window of their own.
    assert world.client("moderator").put(reaction_url(message, "👍")).status_code == 200


@pytest.mark.django_db
def test_edits_are_rated(world: World, settings: Any) -> None:
    limit(settings, "edit", "2/min")
    message = post(world.users["member"], world.general)
    client = world.client("member")
    url = f"/api/v1/messages/{message.pk}/"
    for body in ["one", "two"]:
        assert client.patch(url, {"body": body}, format="json").status_code == 200
    assert_rate_limited(client.patch(url, {"body": "three"}, format="json"))
    assert Message.objects.get(pk=message.pk).body == "two"


@pytest.mark.django_db
def test_own_deletions_are_rated_a_moderators_are_not(world: World, settings: Any) -> None:
    limit(settings, "delete", "1/min")
    first, second = (post(world.users["member"], world.general) for _ in range(2))
    client = world.client("member")
    assert client.delete(f"/api/v1/messages/{first.pk}/").status_code == 204
    assert_rate_limited(client.delete(f"/api/v1/messages/{second.pk}/"))
    assert not Message.objects.get(pk=second.pk).deleted
    # Moderation (another's message) is not rated: a spam wave is cleaned up at once.
    others = [post(world.target, world.general) for _ in range(3)]
    moderator = world.client("moderator")
    for message in others:
        assert moderator.delete(f"/api/v1/messages/{message.pk}/").status_code == 204


@pytest.mark.django_db
def test_reads_are_rated(world: World, settings: Any) -> None:
    limit(settings, "read", "2/min")
    for _ in range(3):
        post(world.users["admin"], world.general)
    client = world.client("member")
    url = f"/api/v1/rooms/{world.general.pk}/read"
    for seq in (1, 2):
        assert client.post(url, {"seq": seq}, format="json").status_code == 200
    assert_rate_limited(client.post(url, {"seq": 3}, format="json"))
    assert ReadMarker.objects.get(user=world.users["member"]).seq == 2


@pytest.mark.django_db
def test_reports_are_rated(world: World, settings: Any) -> None:
    limit(settings, "report", "1/min")
    first, second = (post(world.target, world.general) for _ in range(2))
    client = world.client("member")
    reason = {"reason": "rude"}
    assert (
        client.post(f"/api/v1/messages/{first.pk}/report", reason, format="json").status_code == 201
    )
    assert_rate_limited(client.post(f"/api/v1/messages/{second.pk}/report", reason, format="json"))
    assert Report.objects.count() == 1


@pytest.mark.django_db
def test_default_rates_refuse_a_reaction_storm(world: World) -> None:
    """The storm of the issue: hundreds of reaction toggles in a few seconds."""
    message = post(world.users["admin"], world.general)
    client = world.client("member")
    answers = [
        client.put(reaction_url(message, "👍")).status_code
        if n % 2 == 0
        else client.delete(reaction_url(message, "👍")).status_code
        for n in range(60)
    ]
    assert 429 in answers  # 30 per 10 s by default: 60 toggles cannot all pass


@pytest.mark.django_db
def test_a_muted_member_cannot_react_and_is_told_until_when(world: World) -> None:
    message = post(world.users["admin"], world.general)
    client = world.client("member")
    assert client.put(reaction_url(message, "👍")).status_code == 200
    ends = mute(world, "member")
    response = client.put(reaction_url(message, "🎉"))
    body = response.json()
    assert (response.status_code, body["code"]) == (403, "muted")
    assert body["muted_until"] == iso(ends)
    assert iso(ends) in body["message"]
    assert not Reaction.objects.filter(emoji="🎉").exists()
    # Taking one's own reaction back is allowed while muted.
    assert client.delete(reaction_url(message, "👍")).status_code == 204


@pytest.mark.django_db
def test_muted_post_and_edit_say_until_when(world: World) -> None:
    message = post(world.users["member"], world.general)
    ends = mute(world, "member")
    client = world.client("member")
    posted = client.post(
        f"/api/v1/rooms/{world.general.pk}/messages",
        {"body": "hi", "client_msg_id": "muted-1"},
        format="json",
    )
    edited = client.patch(f"/api/v1/messages/{message.pk}/", {"body": "x"}, format="json")
    for response in (posted, edited):
        body = response.json()
        assert (response.status_code, body["code"]) == (403, "muted")
        assert body["muted_until"] == iso(ends)
        assert iso(ends) in body["message"]


@pytest.mark.django_db
def test_an_ended_mute_no_longer_refuses_reactions(world: World) -> None:
    message = post(world.users["admin"], world.general)
    mute(world, "member", minutes=-1)
    assert world.client("member").put(reaction_url(message, "👍")).status_code == 200


# --- Socket ------------------------------------------------------------------------------------


@pytest.fixture
def live_world(transactional_db: Any) -> World:
    return build_world("public")


def act_frame(act: str, message_id: int, room: int, n: int) -> dict[str, Any]:
    match act:
        case "reaction":
            kind = "reaction.add" if n % 2 == 0 else "reaction.remove"
            return {"type": kind, "message_id": message_id, "emoji": "👍"}
        case "edit":
            return {"type": "message.edit", "message_id": message_id, "body": f"v{n}"}
        case "read":
            return {"type": "read", "room": room, "seq": n + 1}
    raise AssertionError(act)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("act", ["reaction", "edit", "read"])
async def test_socket_acts_are_rated_and_share_the_window_with_rest(
    live_world: World, settings: Any, act: str
) -> None:
    world = live_world
    limit(settings, act, "3/min")
    settings.MESSAGE_RATE = "100/min"
    member = world.users["member"]
    messages = [
        await database_sync_to_async(post)(member, world.general, f"m{n}") for n in range(4)
    ]
    message = messages[0]
    # One act over REST, two over the socket: the fourth is refused, whichever path.
    client = await database_sync_to_async(world.client)("member")
    if act == "reaction":
        code = (await database_sync_to_async(client.put)(reaction_url(message, "👍"))).status_code
    elif act == "edit":
        url = f"/api/v1/messages/{message.pk}/"
        code = (
            await database_sync_to_async(client.patch)(url, {"body": "v0"}, format="json")
        ).status_code
    else:
        url = f"/api/v1/rooms/{world.general.pk}/read"
        code = (
            await database_sync_to_async(client.post)(url, {"seq": 1}, format="json")
        ).status_code
    assert code == 200
    sock = await connect(member, sync={})
    for n in (1, 2):
        await send(sock, {**act_frame(act, message.pk, world.general.pk, n), "ref": f"a{n}"})
        assert (await until(sock, "ack"))["ref"] == f"a{n}"
    await send(sock, {**act_frame(act, message.pk, world.general.pk, 3), "ref": "over"})
    error = await until(sock, "error")
    assert (error["code"], error["ref"]) == ("rate_limited", "over")
    assert 0 < error["retry_after"] <= 60
    # The refused act changed nothing, and the connection goes on.
    await send(sock, {"type": "ping", "ref": "p"})
    assert (await until(sock, "pong"))["ref"] == "p"
    await sock.disconnect()
    if act == "reaction":
        # REST added, the socket removed and added again; the refused remove left it.
        assert await database_sync_to_async(Reaction.objects.count)() == 1
    elif act == "edit":
        body = await database_sync_to_async(lambda: Message.objects.get(pk=message.pk).body)()
        assert body == "v2"
    else:
        seq = await database_sync_to_async(lambda: ReadMarker.objects.get(user=member).seq)()
        assert seq == 3


@pytest.mark.django_db(transaction=True)
async def test_socket_deletes_are_rated(live_world: World, settings: Any) -> None:
    world = live_world
    limit(settings, "delete", "1/min")
    member = world.users["member"]
    first = await database_sync_to_async(post)(member, world.general, "one")
    second = await database_sync_to_async(post)(member, world.general, "two")
    sock = await connect(member, sync={})
    await send(sock, {"type": "message.delete", "message_id": first.pk, "ref": "d1"})
    assert (await until(sock, "ack"))["ref"] == "d1"
    await send(sock, {"type": "message.delete", "message_id": second.pk, "ref": "d2"})
    error = await until(sock, "error")
    assert (error["code"], error["ref"]) == ("rate_limited", "d2")
    assert error["retry_after"] > 0
    await sock.disconnect()
    assert not await database_sync_to_async(lambda: Message.objects.get(pk=second.pk).deleted)()


@pytest.mark.django_db(transaction=True)
async def test_socket_muted_reaction_and_send_say_until_when(live_world: World) -> None:
    world = live_world
    message = await database_sync_to_async(post)(world.users["admin"], world.general)
    ends = await database_sync_to_async(mute)(world, "member")
    sock = await connect(world.users["member"], sync={})
    await send(sock, {"type": "reaction.add", "message_id": message.pk, "emoji": "👍", "ref": "r"})
    error = await until(sock, "error")
    assert (error["code"], error["ref"]) == ("muted", "r")
    assert error["muted_until"] == iso(ends)
    assert iso(ends) in error["message"]
    send_frame = {
        "type": "message.send",
        "room": world.general.pk,
        "client_msg_id": "while-muted",
        "body": "hi",
        "ref": "s",
    }
    await send(sock, send_frame)
    error = await until(sock, "error")
    assert (error["code"], error["ref"], error["muted_until"]) == ("muted", "s", iso(ends))
    await sock.disconnect()
    assert not await database_sync_to_async(Reaction.objects.exists)()
