"""List endpoints cost a constant number of queries, however long the list."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from communities.models import AuditEntry, Ban, Invite, JoinRequest, Room, RoomMember
from tests.conftest import World
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def grow(world: World, n: int) -> None:
    for i in range(n):
        membership = MembershipFactory(community=world.community)
        room = Room.objects.create(
            community=world.community, name=f"extra-{n}-{i}", private=i % 2 == 0
        )
        RoomMember.objects.create(room=room, user=world.users["member"])
        RoomMember.objects.create(room=world.private_room, user=membership.user)
        Ban.objects.create(community=world.community, user=UserFactory(), by=world.users["owner"])
        Invite.objects.create(community=world.community, code=f"code-{n}-{i}")
        JoinRequest.objects.create(community=world.community, user=UserFactory())
        AuditEntry.objects.create(
            community=world.community,
            community_slug=world.community.slug,
            actor=world.users["owner"],
            action="member.kick",
        )


PATHS = [
    "/api/v1/communities/",
    "/api/v1/communities/{slug}/members/",
    "/api/v1/communities/{slug}/bans/",
    "/api/v1/communities/{slug}/invites/",
    "/api/v1/communities/{slug}/join-requests/",
    "/api/v1/communities/{slug}/audit-log/",
    "/api/v1/communities/{slug}/rooms/",
    "/api/v1/rooms/{secret}/members",
    "/api/v1/me/rooms",
]


def count(world: World, path: str) -> int:
    client = world.client("owner")
    url = path.format(slug=world.community.slug, secret=world.private_room.pk)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


@pytest.mark.parametrize("path", PATHS)
def test_list_query_count_does_not_grow_with_rows(world: World, path: str) -> None:
    grow(world, 1)
    few = count(world, path)
    grow(world, 6)
    assert count(world, path) == few
    assert few <= 8
