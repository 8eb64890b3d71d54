"""Every Room answer of the rooms API carries the caller's real ``unread`` (docs/protocol.md,
Objects): messages by others after the caller's read marker, deleted ones excluded."""

from __future__ import annotations

from typing import Any

import pytest

from chat.models import Message, ReadMarker
from communities.models import Room
from tests.conftest import World

pytestmark = pytest.mark.django_db


def say(room: Room, author: Any, seq: int, *, deleted: bool = False) -> Message:
    """A message written straight to the table: only the unread arithmetic is under test."""
    return Message.objects.create(
        room=room, seq=seq, author=author, client_msg_id=f"m{seq}", body="hi", deleted=deleted
    )


@pytest.fixture
def chatter(world: World) -> World:
    """General holds seq 1 by the admin, 2 and 3 by the member, 4 by the admin, 5 by the
    owner and 6 by the admin, deleted; the member has read up to seq 2."""
    admin, member = world.users["admin"], world.users["member"]
    say(world.general, admin, 1)
    say(world.general, member, 2)
    say(world.general, member, 3)
    say(world.general, admin, 4)
    say(world.general, world.users["owner"], 5)
    say(world.general, admin, 6, deleted=True)
    ReadMarker.objects.create(room=world.general, user=member, seq=2)
    return world


def test_room_detail_carries_unread(chatter: World) -> None:
    body = chatter.client("member").get(f"/api/v1/rooms/{chatter.general.pk}/").json()
    assert body["unread"] == 2  # seq 4 and 5; seq 1 is before the marker, 3 is the member's own


def test_unread_is_per_caller(chatter: World) -> None:
    url = f"/api/v1/rooms/{chatter.general.pk}/"
    assert chatter.client("admin").get(url).json()["unread"] == 3  # no marker: 2, 3 and 5
    assert chatter.client("moderator").get(url).json()["unread"] == 5  # all but the deleted one


def test_room_patch_answer_carries_unread(chatter: World) -> None:
    ReadMarker.objects.create(room=chatter.general, user=chatter.users["admin"], seq=3)
    response = chatter.client("admin").patch(
        f"/api/v1/rooms/{chatter.general.pk}/", {"topic": "news"}, format="json"
    )
    assert response.status_code == 200, response.content
    assert (response.json()["topic"], response.json()["unread"]) == ("news", 1)  # seq 5


def test_community_room_list_carries_unread(chatter: World) -> None:
    say(chatter.private_room, chatter.users["admin"], 1)
    url = f"/api/v1/communities/{chatter.community.slug}/rooms/"
    listed = chatter.client("moderator").get(url).json()["results"]
    assert {room["name"]: room["unread"] for room in listed} == {"general": 5, "secret": 1}
    listed = chatter.client("member").get(url).json()["results"]
    assert {room["name"]: room["unread"] for room in listed} == {"general": 2}


def test_community_room_list_unread_costs_no_query_per_room(
    chatter: World, django_assert_num_queries: Any
) -> None:
    client = chatter.client("owner")
    url = f"/api/v1/communities/{chatter.community.slug}/rooms/"
    # token, community and role, page count, page with its unread counts
    with django_assert_num_queries(4):
        assert len(client.get(url).json()["results"]) == 2
    for i in range(5):
        room = Room.objects.create(community=chatter.community, name=f"more-{i}")
        say(room, chatter.users["admin"], 1)
    with django_assert_num_queries(4):
        listed = client.get(url).json()["results"]
    assert len(listed) == 7
    assert {room["unread"] for room in listed if room["name"].startswith("more-")} == {1}


def test_room_create_answer_has_no_unread_yet(world: World) -> None:
    response = world.client("admin").post(
        f"/api/v1/communities/{world.community.slug}/rooms/", {"name": "fresh"}, format="json"
    )
    assert (response.status_code, response.json()["unread"]) == (201, 0)
