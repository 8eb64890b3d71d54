"""The message endpoints added in 1.1 and history paging (docs/api.md): reading one message,
who reacted with an emoji, and paging parameters an endpoint does not take."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from chat.services.reactions import reaction_add
from communities.models import RoomMember
from tests.chat.conftest import post
from tests.conftest import World, client_for
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


def message_url(message: Any) -> str:
    return f"/api/v1/messages/{message.pk}/"


def reactors_url(message: Any, emoji: str) -> str:
    return f"/api/v1/messages/{message.pk}/reactions/{quote(emoji)}/"


# --- GET /messages/{id}/ -----------------------------------------------------------------------


def test_a_reader_gets_the_message(world: World) -> None:
    message = post(world.users["admin"], world.general, "hello there")
    reaction_add(actor=world.users["member"], message=message, emoji="👍")
    response = world.client("member").get(message_url(message))
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["id"], body["room"], body["seq"], body["body"]) == (
        message.pk,
        world.general.pk,
        message.seq,
        "hello there",
    )
    admin = world.users["admin"]
    assert body["author"] == {"id": admin.pk, "username": admin.username}
    assert body["reactions"] == [{"emoji": "👍", "count": 1, "me": True}]
    # The same shape as in history.
    history = world.client("member").get(f"/api/v1/rooms/{world.general.pk}/messages").json()
    assert history["results"] == [body]


def test_a_deleted_message_reads_as_deleted(world: World) -> None:
    message = post(world.users["member"], world.general, "oops")
    assert world.client("member").delete(message_url(message)).status_code == 204
    body = world.client("admin").get(message_url(message)).json()
    assert (body["deleted"], body["body"]) == (True, "")


@pytest.mark.parametrize("standing", ["outsider", "banned"])
def test_a_non_reader_gets_the_404_of_a_missing_message(world: World, standing: str) -> None:
    message = post(world.users["admin"], world.general)
    hidden = world.client(standing).get(message_url(message))
    missing = world.client(standing).get(f"/api/v1/messages/{message.pk + 1000}/")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json() == missing.json()


def test_a_private_rooms_message_is_404_to_members_outside_it(world: World) -> None:
    message = post(world.users["moderator"], world.private_room)
    assert world.client("member").get(message_url(message)).status_code == 404
    assert world.client("moderator").get(message_url(message)).status_code == 200
    assert world.client("owner").get(message_url(message)).status_code == 200


def test_getting_a_message_needs_credentials(world: World) -> None:
    message = post(world.users["admin"], world.general)
    response = world.client("anonymous").get(message_url(message))
    assert (response.status_code, response.json()["code"]) == (401, "unauthenticated")


# --- GET /messages/{id}/reactions/{emoji}/ -----------------------------------------------------


def test_who_reacted_earliest_first(world: World) -> None:
    message = post(world.users["admin"], world.general)
    for standing in ["member", "owner", "moderator"]:
        reaction_add(actor=world.users[standing], message=message, emoji="👍")
    reaction_add(actor=world.users["admin"], message=message, emoji="🎉")
    response = world.client("member").get(reactors_url(message, "👍"))
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["next"] is None
    assert body["results"] == [
        {"id": world.users[s].pk, "username": world.users[s].username}
        for s in ["member", "owner", "moderator"]
    ]


def test_who_reacted_is_paged(world: World) -> None:
    message = post(world.users["admin"], world.general)
    users = [MembershipFactory(community=world.community).user for _ in range(3)]
    for user in users:
        reaction_add(actor=user, message=message, emoji="👍")
    client = world.client("member")
    first = client.get(reactors_url(message, "👍"), {"limit": 2}).json()
    assert [u["id"] for u in first["results"]] == [users[0].pk, users[1].pk]
    assert first["next"] is not None
    second = client.get(first["next"]).json()
    assert [u["id"] for u in second["results"]] == [users[2].pk]
    assert second["next"] is None


def test_an_emoji_nobody_used_has_no_reactors(world: World) -> None:
    message = post(world.users["admin"], world.general)
    response = world.client("member").get(reactors_url(message, "🎉"))
    assert response.status_code == 200
    assert response.json() == {"results": [], "next": None}


def test_a_bad_emoji_is_400(world: World) -> None:
    message = post(world.users["admin"], world.general)
    response = world.client("member").get(reactors_url(message, "a b"))
    assert (response.status_code, response.json()["code"]) == (400, "invalid")
    assert "emoji" in response.json()["fields"]


def test_who_reacted_is_404_to_non_readers(world: World) -> None:
    message = post(world.users["moderator"], world.private_room)
    reaction_add(actor=world.users["moderator"], message=message, emoji="👍")
    hidden = world.client("member").get(reactors_url(message, "👍"))
    missing = world.client("member").get(f"/api/v1/messages/{message.pk + 1000}/reactions/👍/")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json() == missing.json()
    RoomMember.objects.create(room=world.private_room, user=world.users["member"])
    assert world.client("member").get(reactors_url(message, "👍")).status_code == 200


# --- Paging parameters an endpoint does not take -----------------------------------------------


def test_history_refuses_page_naming_the_seq_cursors(world: World) -> None:
    for n in range(3):
        post(world.users["admin"], world.general, f"m{n}")
    url = f"/api/v1/rooms/{world.general.pk}/messages"
    response = world.client("member").get(url, {"page": 2, "limit": 1})
    assert (response.status_code, response.json()["code"]) == (400, "invalid")
    hint = response.json()["fields"]["page"][0]
    assert "before_seq" in hint
    assert "after_seq" in hint
    # A blank page (a URL template filled with nothing) is absent, like the other blanks.
    blank = world.client("member").get(f"{url}?page=&limit=1")
    assert blank.status_code == 200
    assert [m["body"] for m in blank.json()["results"]] == ["m2"]


def test_history_of_an_unreadable_room_is_404_before_400(world: World) -> None:
    url = f"/api/v1/rooms/{world.private_room.pk}/messages?page=2"
    assert world.client("member").get(url).status_code == 404


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/communities/",
        "/api/v1/search?q=hello",
        "/api/v1/me/rooms",
    ],
)
@pytest.mark.parametrize("cursor", ["after_seq", "before_seq"])
def test_page_numbered_lists_refuse_seq_cursors(world: World, url: str, cursor: str) -> None:
    separator = "&" if "?" in url else "?"
    response = client_for(world.users["member"]).get(f"{url}{separator}{cursor}=5")
    assert (response.status_code, response.json()["code"]) == (400, "invalid")
    assert "page" in response.json()["fields"][cursor][0]


def test_page_numbered_lists_still_ignore_other_unknown_parameters(world: World) -> None:
    response = world.client("member").get("/api/v1/communities/", {"colour": "blue"})
    assert response.status_code == 200
