"""Every error under /api/ is the API's JSON error body, Django's and DRF's own included."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from tests.conftest import World, client_for

pytestmark = pytest.mark.django_db


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["code"] == code
    assert isinstance(body["message"], str)
    assert body["message"]
    return body


def test_unknown_api_path_is_json_404(world: World) -> None:
    assert_error(world.client("member").get("/api/v1/nothing-here"), 404, "not_found")
    assert_error(APIClient().get("/api/v2/"), 404, "not_found")


def test_wrong_method_is_405(world: World) -> None:
    assert_error(world.client("member").delete("/api/v1/me"), 405, "method_not_allowed")


def test_non_json_body_is_415(world: World) -> None:
    response = world.client("owner").post(
        "/api/v1/communities/", "name=x", content_type="application/x-www-form-urlencoded"
    )
    assert_error(response, 415, "unsupported_media_type")


@pytest.mark.parametrize("raw", ["{", "[1, 2]", '"text"', "null", '{"name": NaN}'])
def test_malformed_or_non_object_json_is_400(world: World, raw: str) -> None:
    response = world.client("owner").post(
        "/api/v1/communities/", raw, content_type="application/json"
    )
    assert_error(response, 400, "invalid")


def test_body_over_64_kib_is_413(world: World) -> None:
    response = world.client("owner").post(
        "/api/v1/communities/", {"name": "x", "description": "y" * 70_000}, format="json"
    )
    assert_error(response, 413, "too_large")


def test_unknown_fields_are_refused_and_nothing_changes(world: World) -> None:
    response = world.client("admin").patch(
        f"/api/v1/rooms/{world.general.pk}/", {"topic": "t", "head_seq": 99}, format="json"
    )
    body = assert_error(response, 400, "invalid")
    assert body["fields"] == {"head_seq": ["Unknown field."]}
    world.general.refresh_from_db()
    assert (world.general.topic, world.general.head_seq) == ("", 0)


@pytest.mark.parametrize(
    "body", [{"minutes": "abc"}, {"minutes": None}, {"minutes": 10.5}, {"minutes": [1]}, {}]
)
def test_wrong_types_are_400_with_fields(world: World, body: dict[str, Any]) -> None:
    response = world.client("owner").post(
        f"/api/v1/communities/{world.community.slug}/members/{world.target.pk}/mute",
        body,
        format="json",
    )
    assert "minutes" in assert_error(response, 400, "invalid")["fields"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/rooms/99999999999999999999999/",
        "/api/v1/rooms/-1/",
        "/api/v1/rooms/abc/",
        "/api/v1/communities/" + "a" * 300 + "/",
        "/api/v1/invites/" + "z" * 300 + "/accept",
    ],
)
def test_odd_paths_are_404_never_500(world: World, path: str) -> None:
    client = world.client("member")
    response = client.post(path) if path.endswith("accept") else client.get(path)
    assert_error(response, 404, "not_found")


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/communities/?q=a%00b",
        "/api/v1/communities/?mine=%00",
        "/api/v1/invites/a%00b/accept",
        "/api/v1/communities/%00/",
    ],
)
def test_nul_bytes_in_path_or_query_are_400(world: World, path: str) -> None:
    client = world.client("member")
    response = client.post(path) if path.endswith("accept") else client.get(path)
    assert_error(response, 400, "invalid")


def test_nul_bytes_in_a_body_are_400_and_nothing_is_created(world: World) -> None:
    response = world.client("owner").post("/api/v1/communities/", {"name": "a\x00b"}, format="json")
    assert "name" in assert_error(response, 400, "invalid")["fields"]


def test_user_throttle_answers_429_with_retry_after(world: World, settings: Any) -> None:
    settings.THROTTLE_RATES = {"user": "3/min", "auth": "100/min"}
    client = world.client("member")
    statuses = [client.get("/api/v1/me").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    response = client.get("/api/v1/me")
    assert_error(response, 429, "rate_limited")
    assert 1 <= int(response["Retry-After"]) <= 60
    # Per user: another user is not affected.
    assert world.client("admin").get("/api/v1/me").status_code == 200


def test_auth_throttle_limits_credential_guessing(settings: Any, user: Any) -> None:
    settings.THROTTLE_RATES = {"user": "100/min", "auth": "2/min"}
    client = APIClient()
    bad = {"username": user.username, "password": "guess-guess-guess"}
    statuses = [client.post("/api/v1/auth/token", bad, format="json").status_code for _ in range(3)]
    assert statuses == [400, 400, 429]


def test_auth_throttle_ignores_a_client_chosen_forwarded_for(settings: Any, user: Any) -> None:
    settings.THROTTLE_RATES = {"user": "100/min", "auth": "2/min"}
    client = APIClient()
    bad = {"username": user.username, "password": "guess-guess-guess"}
    statuses = [
        client.post(
            "/api/v1/auth/token", bad, format="json", HTTP_X_FORWARDED_FOR=f"10.0.0.{n}"
        ).status_code
        for n in range(3)
    ]
    assert statuses == [400, 400, 429]


def test_error_body_for_invalid_has_fields_only_when_relevant(user: Any) -> None:
    response = client_for(user).post("/api/v1/communities/", {"name": ""}, format="json")
    assert set(assert_error(response, 400, "invalid")) == {"code", "message", "fields"}
    missing = client_for(user).get("/api/v1/communities/nope/")
    assert set(assert_error(missing, 404, "not_found")) == {"code", "message"}


# Deep enough to exhaust Python's recursion limit in the stdlib JSON decoder, still only ~3 KB.
DEEP_OBJECT = '{"a":' * 3000 + "1" + "}" * 3000
DEEP_ARRAY = "[" * 3000 + "]" * 3000


@pytest.mark.parametrize("raw", [DEEP_OBJECT, DEEP_ARRAY])
def test_deeply_nested_json_is_400_with_fields(world: World, raw: str) -> None:
    register = APIClient().post("/api/v1/auth/register", raw, content_type="application/json")
    assert "non_field_errors" in assert_error(register, 400, "invalid")["fields"]
    create = world.client("owner").post(
        "/api/v1/communities/", raw, content_type="application/json"
    )
    assert "non_field_errors" in assert_error(create, 400, "invalid")["fields"]


def test_moderately_nested_json_is_400_like_any_wrong_type(world: World) -> None:
    # Below the recursion limit but far beyond any API body: refused, never a 500.
    raw = '{"name": ' + "[" * 200 + "]" * 200 + "}"
    response = world.client("owner").post(
        "/api/v1/communities/", raw, content_type="application/json"
    )
    assert_error(response, 400, "invalid")


def test_malformed_json_is_400_with_non_field_errors(world: World) -> None:
    response = world.client("owner").post(
        "/api/v1/communities/", '{"name": ', content_type="application/json"
    )
    body = assert_error(response, 400, "invalid")
    assert list(body["fields"]) == ["non_field_errors"]
    assert all(isinstance(message, str) for message in body["fields"]["non_field_errors"])


@pytest.mark.parametrize("page", ["abc", "1.5", "0", "-1", "1e3"])
def test_a_page_that_is_not_a_positive_integer_is_400(world: World, page: str) -> None:
    response = world.client("member").get(
        f"/api/v1/communities/{world.community.slug}/members/", {"page": page}
    )
    assert list(assert_error(response, 400, "invalid")["fields"]) == ["page"]


def test_a_page_past_the_end_stays_404_and_last_works(world: World) -> None:
    client = world.client("member")
    url = f"/api/v1/communities/{world.community.slug}/members/"
    assert_error(client.get(url, {"page": "2"}), 404, "not_found")
    assert client.get(url, {"page": "last"}).status_code == 200
    assert client.get(url, {"page": "1"}).status_code == 200
