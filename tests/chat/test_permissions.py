"""The permission matrix of the chat endpoints, in the style of tests/communities.

Each row is an endpoint; its expectation string gives the status for, in order: owner, admin,
moderator, member, outsider (not a member), banned, anonymous. Each cell runs in a fresh world
where the target (a plain member) and the admin have each posted in ``general``, the moderator
in the private room ``secret``, and every user of the world has reacted with 👍 to the target's
message.
"""

from __future__ import annotations

from typing import Any

import pytest

from chat.models import Reaction
from tests.chat.conftest import post
from tests.conftest import World, build_world, matrix_cases

R = "/api/v1/rooms/{general}"
S = "/api/v1/rooms/{secret}"
M = "/api/v1/messages/{message}"

# name, method, path, body, public-world statuses, private-world statuses (None: same)
MATRIX: list[tuple[str, str, str, Any, str, str | None]] = [
    ("history", "get", R + "/messages", None, "200 200 200 200 404 404 401", None),
    ("private history", "get", S + "/messages", None, "200 200 200 404 404 404 401", None),
    (
        "post",
        "post",
        R + "/messages",
        {"body": "hi", "client_msg_id": "m1"},
        "201 201 201 201 404 404 401",
        None,
    ),
    (
        "post in private room",
        "post",
        S + "/messages",
        {"body": "hi", "client_msg_id": "m1"},
        "201 201 201 404 404 404 401",
        None,
    ),
    ("edit another's", "patch", M + "/", {"body": "x"}, "403 403 403 403 404 404 401", None),
    (
        "edit own",
        "patch",
        "/api/v1/messages/{own}/",
        {"body": "x"},
        "200 200 200 200 404 404 401",
        None,
    ),
    ("delete a member's", "delete", M + "/", None, "204 204 204 403 404 404 401", None),
    (
        "delete an admin's",
        "delete",
        "/api/v1/messages/{admin_message}/",
        None,
        "204 204 403 403 404 404 401",
        None,
    ),
    (
        "delete in private room",
        "delete",
        "/api/v1/messages/{secret_message}/",
        None,
        "204 204 204 404 404 404 401",
        None,
    ),
    ("react", "put", M + "/reactions/%F0%9F%8E%89/", None, "200 200 200 200 404 404 401", None),
    (
        "unreact",
        "delete",
        M + "/reactions/%F0%9F%91%8D/",
        None,
        "204 204 204 204 404 404 401",
        None,
    ),
    ("report", "post", M + "/report", {"reason": "spam"}, "201 201 201 201 404 404 401", None),
    ("read", "post", R + "/read", {"seq": 1}, "200 200 200 200 404 404 401", None),
    ("read private room", "post", S + "/read", {"seq": 1}, "200 200 200 404 404 404 401", None),
    ("presence", "get", R + "/presence", None, "200 200 200 200 404 404 401", None),
    ("private presence", "get", S + "/presence", None, "200 200 200 404 404 404 401", None),
    ("search", "get", "/api/v1/search?q=hello", None, "200 200 200 200 200 200 401", None),
    ("my rooms", "get", "/api/v1/me/rooms", None, "200 200 200 200 200 200 401", None),
]

CODES = {401: "unauthenticated", 403: "forbidden", 404: "not_found"}


def _names(world: World, standing: str) -> dict[str, Any]:
    message = post(world.target, world.general, "hello from the target")
    admin_message = post(world.users["admin"], world.general, "hello from the admin")
    secret_message = post(world.users["moderator"], world.private_room, "hello in secret")
    for user in [*world.users.values(), world.target]:
        Reaction.objects.create(message=message, user=user, emoji="👍")
    # "Edit own": the caller's own message where the caller can post; else the target's.
    poster = standing in {"owner", "admin", "moderator", "member"}
    own = post(world.users[standing], world.general) if poster else message
    return {
        "general": world.general.pk,
        "secret": world.private_room.pk,
        "message": message.pk,
        "admin_message": admin_message.pk,
        "secret_message": secret_message.pk,
        "own": own.pk,
    }


@pytest.mark.django_db
@pytest.mark.usefixtures("no_message_rate")
@pytest.mark.parametrize(
    ("visibility", "method", "path", "body", "standing", "status"), matrix_cases(MATRIX)
)
def test_permission_matrix(
    visibility: str, method: str, path: str, body: Any, standing: str, status: int
) -> None:
    world = build_world(visibility)
    client = world.client(standing)
    url = path.format(**_names(world, standing))
    response = getattr(client, method)(url, body, format="json")
    assert response.status_code == status, response.content
    if status in CODES:
        assert response.json()["code"] == CODES[status]
