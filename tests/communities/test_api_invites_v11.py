"""Invite preview (``GET /api/v1/invites/{code}``) and the community slug in an accepted invite
(docs/api.md, Invites)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from communities.models import Invite
from tests.conftest import World, client_for
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PREVIEW_KEYS = {"code", "community", "expires_at", "valid", "reason"}


def create_invite(world: World, **body: Any) -> dict[str, Any]:
    response = world.client("admin").post(
        f"/api/v1/communities/{world.community.slug}/invites/", body, format="json"
    )
    assert response.status_code == 201, response.content
    return response.json()


def preview(user: Any, code: str) -> Any:
    return client_for(user).get(f"/api/v1/invites/{code}")


def test_a_private_community_is_shown_to_the_holder_of_a_code(private_world: World) -> None:
    invite = create_invite(private_world, max_uses=5)
    stranger = UserFactory()
    # Without the code the community is hidden.
    hidden = client_for(stranger).get(f"/api/v1/communities/{private_world.community.slug}/")
    assert hidden.status_code == 404
    response = preview(stranger, invite["code"])
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == PREVIEW_KEYS
    assert (body["code"], body["expires_at"], body["valid"], body["reason"]) == (
        invite["code"],
        invite["expires_at"],
        True,
        None,
    )
    community = body["community"]
    assert community["slug"] == private_world.community.slug
    assert community["name"] == private_world.community.name
    assert community["visibility"] == "private"
    assert community["my_role"] is None
    # owner, admin, moderator, member and the target of build_world
    assert community["member_count"] == 5
    # Previewing counts no use.
    assert Invite.objects.get(code=invite["code"]).uses == 0


def test_a_member_sees_their_role(world: World) -> None:
    invite = create_invite(world)
    body = preview(world.users["member"], invite["code"]).json()
    assert (body["valid"], body["community"]["my_role"]) == (True, "member")


def test_an_unknown_code_is_404(world: World) -> None:
    response = preview(world.users["outsider"], "nosuchcode")
    assert (response.status_code, response.json()["code"]) == (404, "not_found")


def test_a_preview_needs_credentials(world: World) -> None:
    invite = create_invite(world)
    response = client_for(None).get(f"/api/v1/invites/{invite['code']}")
    assert (response.status_code, response.json()["code"]) == (401, "unauthenticated")


def test_expired_used_up_and_revoked_codes_are_not_valid(private_world: World) -> None:
    expired = create_invite(private_world, expires_in_s=60)
    Invite.objects.filter(code=expired["code"]).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    used_up = create_invite(private_world, max_uses=1)
    first = client_for(UserFactory()).post(f"/api/v1/invites/{used_up['code']}/accept")
    assert first.status_code == 200
    revoked = create_invite(private_world)
    slug = private_world.community.slug
    url = f"/api/v1/communities/{slug}/invites/{revoked['code']}/"
    assert private_world.client("admin").delete(url).status_code == 204
    stranger = UserFactory()
    for invite, reason in [(expired, "expired"), (used_up, "used_up"), (revoked, "revoked")]:
        response = preview(stranger, invite["code"])
        assert response.status_code == 200, reason
        body = response.json()
        assert (body["valid"], body["reason"]) == (False, reason)
        assert body["community"]["slug"] == slug
        # What the preview says is what accepting answers.
        accepted = client_for(stranger).post(f"/api/v1/invites/{invite['code']}/accept")
        assert (accepted.status_code, accepted.json()["code"]) == (410, "gone")


def test_a_banned_user_sees_the_invite_as_not_valid(world: World) -> None:
    invite = create_invite(world)
    body = preview(world.users["banned"], invite["code"]).json()
    assert (body["valid"], body["reason"]) == (False, "banned")
    accepted = client_for(world.users["banned"]).post(f"/api/v1/invites/{invite['code']}/accept")
    assert (accepted.status_code, accepted.json()["code"]) == (403, "banned")


def test_an_accepted_invite_names_the_community(private_world: World) -> None:
    invite = create_invite(private_world)
    newcomer = UserFactory()
    response = client_for(newcomer).post(f"/api/v1/invites/{invite['code']}/accept")
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"user", "role", "joined_at", "muted_until", "community"}
    assert (body["user"]["id"], body["role"], body["community"]) == (
        newcomer.pk,
        "member",
        private_world.community.slug,
    )
    # A member accepting again gets the same shape back.
    again = client_for(newcomer).post(f"/api/v1/invites/{invite['code']}/accept").json()
    assert again["community"] == private_world.community.slug
