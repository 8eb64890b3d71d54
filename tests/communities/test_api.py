"""REST behaviour beyond the permission matrix: shapes, invites, lists and pagination."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from communities.models import AuditEntry, Invite, Membership
from tests.conftest import World, client_for
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_community_shape_with_member_count_and_my_role(world: World) -> None:
    body = world.client("moderator").get(f"/api/v1/communities/{world.community.slug}/").json()
    assert set(body) == {
        "slug",
        "name",
        "description",
        "visibility",
        "member_count",
        "my_role",
        "created_at",
    }
    assert body["member_count"] == 5  # owner, admin, moderator, member, target
    assert body["my_role"] == "moderator"
    outsider = world.client("outsider").get(f"/api/v1/communities/{world.community.slug}/")
    assert outsider.json()["my_role"] is None


def test_create_community_answers_the_object(user: Any) -> None:
    response = client_for(user).post(
        "/api/v1/communities/", {"name": "Go Users", "visibility": "private"}, format="json"
    )
    assert response.status_code == 201
    assert response.json() | {"created_at": None} == {
        "slug": "go-users",
        "name": "Go Users",
        "description": "",
        "visibility": "private",
        "member_count": 1,
        "my_role": "owner",
        "created_at": None,
    }


def test_list_shows_public_and_own_not_foreign_private(world: World, private_world: World) -> None:
    outsider_slugs = [
        c["slug"] for c in world.client("outsider").get("/api/v1/communities/").json()["results"]
    ]
    assert world.community.slug in outsider_slugs
    assert private_world.community.slug not in outsider_slugs
    member = private_world.users["member"]
    mine = client_for(member).get("/api/v1/communities/?mine=1").json()["results"]
    assert [c["slug"] for c in mine] == [private_world.community.slug]
    found = client_for(member).get("/api/v1/communities/", {"q": world.community.name}).json()
    assert [c["slug"] for c in found["results"]] == [world.community.slug]


def test_lists_are_paginated_with_results_and_next(world: World) -> None:
    for _ in range(4):
        MembershipFactory(community=world.community)
    client = world.client("member")
    first = client.get(f"/api/v1/communities/{world.community.slug}/members/?limit=5").json()
    assert set(first) == {"results", "next"}
    assert len(first["results"]) == 5
    assert first["next"]
    second = client.get(first["next"]).json()
    assert len(second["results"]) == 4
    assert second["next"] is None
    seen = [m["user"]["id"] for m in first["results"] + second["results"]]
    assert len(set(seen)) == 9


def test_room_lists_respect_private_rooms(world: World) -> None:
    def names(standing: str) -> set[str]:
        body = world.client(standing).get(f"/api/v1/communities/{world.community.slug}/rooms/")
        return {room["name"] for room in body.json()["results"]}

    assert names("member") == {"general"}
    assert names("moderator") == {"general", "secret"}  # a member of the private room
    assert names("admin") == {"general", "secret"}
    my_rooms = world.client("member").get("/api/v1/me/rooms").json()["results"]
    assert [room["name"] for room in my_rooms] == ["general"]
    assert set(my_rooms[0]) == {
        "id",
        "kind",
        "members",
        "community",
        "name",
        "topic",
        "private",
        "slow_mode_s",
        "head_seq",
        "unread",
        "created_at",
    }
    assert (my_rooms[0]["community"], my_rooms[0]["unread"]) == (world.community.slug, 0)


def test_unreadable_room_is_404_exactly_like_a_missing_one(world: World) -> None:
    client = world.client("member")
    hidden = client.get(f"/api/v1/rooms/{world.private_room.pk}/")
    missing = client.get("/api/v1/rooms/999999/")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json() == missing.json()


def test_private_community_is_404_like_a_missing_one(private_world: World) -> None:
    client = private_world.client("outsider")
    hidden = client.get(f"/api/v1/communities/{private_world.community.slug}/")
    missing = client.get("/api/v1/communities/no-such-place/")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json() == missing.json()


def test_private_room_members_lists_readers(world: World) -> None:
    body = world.client("admin").get(f"/api/v1/rooms/{world.private_room.pk}/members").json()
    roles = sorted(m["role"] for m in body["results"])
    assert roles == ["admin", "moderator", "owner"]


# --- Invites -----------------------------------------------------------------------------------


def create_invite(world: World, **body: Any) -> dict[str, Any]:
    response = world.client("admin").post(
        f"/api/v1/communities/{world.community.slug}/invites/", body, format="json"
    )
    assert response.status_code == 201, response.content
    return response.json()


def accept(user: Any, code: str) -> Any:
    return client_for(user).post(f"/api/v1/invites/{code}/accept")


def test_invite_max_uses(private_world: World) -> None:
    invite = create_invite(private_world, max_uses=2)
    assert (invite["max_uses"], invite["uses"]) == (2, 0)
    first, second, third = UserFactory(), UserFactory(), UserFactory()
    assert accept(first, invite["code"]).json()["user"]["id"] == first.pk
    assert accept(second, invite["code"]).status_code == 200
    refused = accept(third, invite["code"])
    assert (refused.status_code, refused.json()["code"]) == (410, "gone")
    assert not Membership.objects.filter(user=third).exists()
    assert Invite.objects.get(code=invite["code"]).uses == 2


def test_invite_member_accepting_counts_no_use(world: World) -> None:
    invite = create_invite(world, max_uses=1)
    response = accept(world.users["member"], invite["code"])
    assert (response.status_code, response.json()["role"]) == (200, "member")
    assert Invite.objects.get(code=invite["code"]).uses == 0


def test_invite_expiry(world: World) -> None:
    invite = create_invite(world, expires_in_s=60)
    Invite.objects.filter(code=invite["code"]).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    response = accept(UserFactory(), invite["code"])
    assert (response.status_code, response.json()["code"]) == (410, "gone")


def test_invite_revocation(world: World) -> None:
    invite = create_invite(world)
    path = f"/api/v1/communities/{world.community.slug}/invites/{invite['code']}/"
    assert world.client("admin").delete(path).status_code == 204
    assert accept(UserFactory(), invite["code"]).status_code == 410
    assert world.client("admin").delete(path).status_code == 404
    actions = list(AuditEntry.objects.values_list("action", flat=True)[:2])
    assert actions == ["invite.revoke", "invite.create"]


def test_invite_refuses_a_banned_user(world: World) -> None:
    invite = create_invite(world)
    response = accept(world.users["banned"], invite["code"])
    assert (response.status_code, response.json()["code"]) == (403, "banned")


def test_invite_unknown_code_is_404(user: Any) -> None:
    assert accept(user, "nope").status_code == 404


def test_invite_defaults_to_a_week_and_unlimited_uses(world: World) -> None:
    invite = create_invite(world)
    assert invite["max_uses"] is None
    assert invite["expires_at"] is not None


@pytest.mark.parametrize(
    "body",
    [{"max_uses": 0}, {"max_uses": "many"}, {"expires_in_s": 5}, {"uses": 3}, {"max_uses": True}],
)
def test_invite_bad_input_is_400(world: World, body: dict[str, Any]) -> None:
    response = world.client("admin").post(
        f"/api/v1/communities/{world.community.slug}/invites/", body, format="json"
    )
    assert (response.status_code, response.json()["code"]) == (400, "invalid")
    assert set(response.json()["fields"]) == set(body)


# --- Join requests, bans, audit over REST ------------------------------------------------------


def test_join_request_flow_over_rest(private_world: World) -> None:
    world, applicant = private_world, UserFactory()
    asked = client_for(applicant).post(f"/api/v1/communities/{world.community.slug}/join")
    assert asked.status_code == 202
    request_id = asked.json()["id"]
    pending = world.client("admin").get(
        f"/api/v1/communities/{world.community.slug}/join-requests/"
    )
    assert [r["user"]["username"] for r in pending.json()["results"]] == [applicant.username]
    approved = world.client("admin").post(
        f"/api/v1/communities/{world.community.slug}/join-requests/{request_id}/approve"
    )
    assert (approved.status_code, approved.json()["user"]["id"]) == (200, applicant.pk)
    again = client_for(applicant).post(f"/api/v1/communities/{world.community.slug}/join")
    assert (again.status_code, again.json()["role"]) == (200, "member")


def test_ban_shape_and_audit_log_newest_first(world: World) -> None:
    slug = world.community.slug
    banned = world.client("moderator").post(
        f"/api/v1/communities/{slug}/bans/",
        {"user_id": world.target.pk, "reason": "spam"},
        format="json",
    )
    assert banned.status_code == 201
    assert banned.json()["user"]["id"] == world.target.pk
    assert banned.json()["by"]["id"] == world.users["moderator"].pk
    world.client("moderator").delete(f"/api/v1/communities/{slug}/bans/{world.target.pk}/")
    log = world.client("admin").get(f"/api/v1/communities/{slug}/audit-log/").json()["results"]
    assert [entry["action"] for entry in log[:2]] == ["member.unban", "member.ban"]
    assert log[1]["actor"]["id"] == world.users["moderator"].pk
    assert log[1]["target"] == f"user:{world.target.pk}"
    assert set(log[0]) == {"id", "actor", "action", "target", "detail", "created_at"}


def test_transfer_ownership_over_rest(world: World) -> None:
    slug = world.community.slug
    response = world.client("owner").patch(
        f"/api/v1/communities/{slug}/members/{world.users['admin'].pk}/",
        {"role": "owner"},
        format="json",
    )
    assert (response.status_code, response.json()["role"]) == (200, "owner")
    me = world.client("owner").get(f"/api/v1/communities/{slug}/").json()
    assert me["my_role"] == "admin"
    assert world.client("owner").post(f"/api/v1/communities/{slug}/leave").status_code == 204


def test_owner_grants_admin_over_rest_and_an_admin_cannot(world: World) -> None:
    url = f"/api/v1/communities/{world.community.slug}/members/{world.target.pk}/"
    refused = world.client("admin").patch(url, {"role": "admin"}, format="json")
    assert (refused.status_code, refused.json()["code"]) == (403, "forbidden")
    granted = world.client("owner").patch(url, {"role": "admin"}, format="json")
    assert granted.status_code == 200
    assert (granted.json()["user"]["id"], granted.json()["role"]) == (world.target.pk, "admin")
    log = world.client("owner").get(f"/api/v1/communities/{world.community.slug}/audit-log/")
    newest = log.json()["results"][0]
    assert (newest["action"], newest["detail"]) == (
        "member.role",
        {"from": "member", "to": "admin"},
    )
