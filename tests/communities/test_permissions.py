"""The permission matrix: every standing against every endpoint of the REST API (docs/api.md).

Each row is an endpoint; its expectation string gives the status for, in order: owner, admin,
moderator, member, outsider (a user who is not a member), banned, anonymous. Each cell runs in a
fresh world, so one act never changes the next one's starting point.
"""

from __future__ import annotations

from typing import Any

import pytest

from communities.models import Invite, JoinRequest
from tests.conftest import World, build_world, matrix_cases
from tests.factories import UserFactory

C = "/api/v1/communities/{slug}"

# name, method, path, body, public-world statuses, private-world statuses (None: same)
MATRIX: list[tuple[str, str, str, Any, str, str | None]] = [
    ("list communities", "get", "/api/v1/communities/", None, "200 200 200 200 200 200 401", None),
    (
        "create community",
        "post",
        "/api/v1/communities/",
        {"name": "New place"},
        "201 201 201 201 201 201 401",
        None,
    ),
    (
        "read community",
        "get",
        C + "/",
        None,
        "200 200 200 200 200 200 401",
        "200 200 200 200 404 404 401",
    ),
    (
        "update community",
        "patch",
        C + "/",
        {"description": "new"},
        "200 200 403 403 403 403 401",
        "200 200 403 403 404 404 401",
    ),
    (
        "delete community",
        "delete",
        C + "/",
        None,
        "204 403 403 403 403 403 401",
        "204 403 403 403 404 404 401",
    ),
    (
        "join",
        "post",
        C + "/join",
        None,
        "200 200 200 200 200 403 401",
        "200 200 200 200 202 403 401",
    ),
    (
        "leave",
        "post",
        C + "/leave",
        None,
        "409 204 204 204 403 403 401",
        "409 204 204 204 404 404 401",
    ),
    (
        "list members",
        "get",
        C + "/members/",
        None,
        "200 200 200 200 403 403 401",
        "200 200 200 200 404 404 401",
    ),
    (
        "grant moderator",
        "patch",
        C + "/members/{target}/",
        {"role": "moderator"},
        "200 200 403 403 403 403 401",
        "200 200 403 403 404 404 401",
    ),
    (
        "kick",
        "delete",
        C + "/members/{target}/",
        None,
        "204 204 204 403 403 403 401",
        "204 204 204 403 404 404 401",
    ),
    (
        "mute",
        "post",
        C + "/members/{target}/mute",
        {"minutes": 10},
        "200 200 200 403 403 403 401",
        "200 200 200 403 404 404 401",
    ),
    (
        "unmute",
        "delete",
        C + "/members/{target}/mute",
        None,
        "204 204 204 403 403 403 401",
        "204 204 204 403 404 404 401",
    ),
    (
        "list bans",
        "get",
        C + "/bans/",
        None,
        "200 200 200 403 403 403 401",
        "200 200 200 403 404 404 401",
    ),
    (
        "ban",
        "post",
        C + "/bans/",
        {"user_id": "{target}", "reason": "spam"},
        "201 201 201 403 403 403 401",
        "201 201 201 403 404 404 401",
    ),
    (
        "unban",
        "delete",
        C + "/bans/{banned}/",
        None,
        "204 204 204 403 403 403 401",
        "204 204 204 403 404 404 401",
    ),
    (
        "list invites",
        "get",
        C + "/invites/",
        None,
        "200 200 403 403 403 403 401",
        "200 200 403 403 404 404 401",
    ),
    (
        "create invite",
        "post",
        C + "/invites/",
        {"max_uses": 5},
        "201 201 403 403 403 403 401",
        "201 201 403 403 404 404 401",
    ),
    (
        "revoke invite",
        "delete",
        C + "/invites/{code}/",
        None,
        "204 204 403 403 403 403 401",
        "204 204 403 403 404 404 401",
    ),
    (
        "accept invite",
        "post",
        "/api/v1/invites/{code}/accept",
        None,
        "200 200 200 200 200 403 401",
        None,
    ),
    (
        "list join requests",
        "get",
        C + "/join-requests/",
        None,
        "200 200 403 403 403 403 401",
        "200 200 403 403 404 404 401",
    ),
    (
        "approve join request",
        "post",
        C + "/join-requests/{request}/approve",
        None,
        "200 200 403 403 403 403 401",
        "200 200 403 403 404 404 401",
    ),
    (
        "deny join request",
        "post",
        C + "/join-requests/{request}/deny",
        None,
        "204 204 403 403 403 403 401",
        "204 204 403 403 404 404 401",
    ),
    (
        "audit log",
        "get",
        C + "/audit-log/",
        None,
        "200 200 403 403 403 403 401",
        "200 200 403 403 404 404 401",
    ),
    (
        "list rooms",
        "get",
        C + "/rooms/",
        None,
        "200 200 200 200 403 403 401",
        "200 200 200 200 404 404 401",
    ),
    (
        "create room",
        "post",
        C + "/rooms/",
        {"name": "ideas"},
        "201 201 403 403 403 403 401",
        "201 201 403 403 404 404 401",
    ),
    ("read room", "get", "/api/v1/rooms/{general}/", None, "200 200 200 200 404 404 401", None),
    (
        "read private room",
        "get",
        "/api/v1/rooms/{secret}/",
        None,
        "200 200 200 404 404 404 401",
        None,
    ),
    (
        "rename room",
        "patch",
        "/api/v1/rooms/{general}/",
        {"topic": "t"},
        "200 200 403 403 404 404 401",
        None,
    ),
    (
        "set slow mode",
        "patch",
        "/api/v1/rooms/{general}/",
        {"slow_mode_s": 30},
        "200 200 200 403 404 404 401",
        None,
    ),
    (
        "delete room",
        "delete",
        "/api/v1/rooms/{general}/",
        None,
        "204 204 403 403 404 404 401",
        None,
    ),
    (
        "private room members",
        "get",
        "/api/v1/rooms/{secret}/members",
        None,
        "200 200 200 404 404 404 401",
        None,
    ),
    (
        "add to private room",
        "post",
        "/api/v1/rooms/{secret}/members",
        {"user_id": "{target}"},
        "201 201 403 404 404 404 401",
        None,
    ),
    (
        "remove from private room",
        "delete",
        "/api/v1/rooms/{secret}/members/{moderator}",
        None,
        "204 204 403 404 404 404 401",
        None,
    ),
    ("me", "get", "/api/v1/me", None, "200 200 200 200 200 200 401", None),
    ("my rooms", "get", "/api/v1/me/rooms", None, "200 200 200 200 200 200 401", None),
    ("ws ticket", "post", "/api/v1/auth/ws-ticket", None, "201 201 201 201 201 201 401", None),
    ("logout", "post", "/api/v1/auth/logout", None, "204 204 204 204 204 204 401", None),
]

CODES = {401: "unauthenticated", 403: "forbidden", 404: "not_found", 409: "conflict"}


def _fill(value: Any, names: dict[str, Any]) -> Any:
    if isinstance(value, str):
        if value.startswith("{") and value.endswith("}") and value[1:-1] in names:
            return names[value[1:-1]]
        return value.format(**names)
    if isinstance(value, dict):
        return {key: _fill(item, names) for key, item in value.items()}
    return value


def _names(world: World) -> dict[str, Any]:
    invite = Invite.objects.create(community=world.community, code="matrix-code")
    request = JoinRequest.objects.create(community=world.community, user=UserFactory())
    return {
        "slug": world.community.slug,
        "target": world.target.pk,
        "banned": world.users["banned"].pk,
        "moderator": world.users["moderator"].pk,
        "general": world.general.pk,
        "secret": world.private_room.pk,
        "code": invite.code,
        "request": request.pk,
    }


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("visibility", "method", "path", "body", "standing", "status"), matrix_cases(MATRIX)
)
def test_permission_matrix(
    visibility: str, method: str, path: str, body: Any, standing: str, status: int
) -> None:
    world = build_world(visibility)
    names = _names(world)
    client = world.client(standing)
    response = getattr(client, method)(_fill(path, names), _fill(body, names), format="json")
    assert response.status_code == status, response.content
    if status in CODES:
        expected_code = (
            "banned"
            if status == 403 and standing == "banned" and (path.endswith(("/join", "/accept")))
            else CODES[status]
        )
        assert response.json()["code"] == expected_code


R = "/api/v1/rooms"

# Malformed bodies (each invalid whatever the caller): who may not act is refused before the
# body is validated, so a 400 never tells them anything. name, method, path, body, a standing
# refused (403), and the least standing that may act (400).
MALFORMED: list[tuple[str, str, str, Any, str, str]] = [
    ("update community", "patch", C + "/", {"visibility": "secretive"}, "member", "admin"),
    ("ban", "post", C + "/bans/", {"user_id": "someone"}, "member", "moderator"),
    ("mute", "post", C + "/members/{target}/mute", {"minutes": "long"}, "member", "moderator"),
    ("set role", "patch", C + "/members/{target}/", {"role": "emperor"}, "moderator", "admin"),
    ("create invite", "post", C + "/invites/", {"max_uses": "many"}, "moderator", "admin"),
    ("create room", "post", C + "/rooms/", {"name": ["x"]}, "moderator", "admin"),
    ("update room", "patch", R + "/{general}/", {"slow_mode_s": "x"}, "member", "moderator"),
    ("add to room", "post", R + "/{secret}/members", {"user_id": []}, "moderator", "admin"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "path", "body", "refused", "allowed"),
    [pytest.param(*row[1:], id=row[0]) for row in MALFORMED],
)
def test_permission_is_answered_before_validation(
    method: str, path: str, body: Any, refused: str, allowed: str
) -> None:
    world = build_world("public")
    names = _names(world)
    url = _fill(path, names)
    response = getattr(world.client(refused), method)(url, body, format="json")
    assert (response.status_code, response.json()["code"]) == (403, "forbidden")
    assert "fields" not in response.json()
    response = getattr(world.client("outsider"), method)(url, body, format="json")
    assert response.status_code in {403, 404}
    response = getattr(world.client(allowed), method)(url, body, format="json")
    assert (response.status_code, response.json()["code"]) == (400, "invalid")


@pytest.mark.django_db
def test_a_private_community_stays_404_to_outsiders_whatever_the_body() -> None:
    world = build_world("private")
    client, names = world.client("outsider"), _names(world)
    for method, path, body, *_ in (row[1:] for row in MALFORMED[:6]):
        response = getattr(client, method)(_fill(path, names), body, format="json")
        assert (response.status_code, response.json()["code"]) == (404, "not_found"), path
