"""The OpenAPI schema as a contract: what it says of each operation, and the limits it states,
probed against the server at and just past each bound.

tests/test_schema_fuzz.py fuzzes every operation against the schema (statuses documented,
bodies as the schema says, never a 5xx); tests/test_docs_examples.py replays the examples of
docs/api.md. This module checks the schema's own promises: every operation is described, ids
in paths are integers, each operation lists only the errors it can give (docs/api.md,
"Errors"), and the limits it gives for usernames, message bodies, ``client_msg_id`` and
``page`` are the server's.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from tests.conftest import World, client_for

HAS_BODY = {"post", "put", "patch"}
# Operations that need nothing beyond a signed-in caller (no 403), and those that look nothing
# up (no 404): method, path.
NO_403 = {
    ("get", "/api/v1/me"),
    ("get", "/api/v1/me/rooms"),
    ("get", "/api/v1/search"),
    ("get", "/api/v1/communities/"),
    ("post", "/api/v1/auth/ws-ticket"),
    ("post", "/api/v1/auth/register"),
    ("post", "/api/v1/auth/token"),
    ("get", "/api/v1/rooms/{room_id}/messages"),
    ("post", "/api/v1/rooms/{room_id}/read"),
    ("get", "/api/v1/rooms/{room_id}/presence"),
}
NO_404 = {
    ("get", "/api/v1/me"),
    ("post", "/api/v1/auth/ws-ticket"),
    ("post", "/api/v1/auth/register"),
    ("post", "/api/v1/auth/token"),
    ("post", "/api/v1/communities/"),
}


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    response = Client().get("/api/schema/", {"format": "json"}, secure=True)
    assert response.status_code == 200
    data: dict[str, Any] = response.json()
    return data


def operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if isinstance(operation, dict) and "responses" in operation
    ]


def component(schema: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = schema["components"]["schemas"][name]
    return found


def test_every_operation_has_a_summary_and_a_description(schema: dict[str, Any]) -> None:
    missing = [
        f"{method.upper()} {path}"
        for method, path, operation in operations(schema)
        if not operation.get("summary") or not operation.get("description")
    ]
    assert not missing


def test_ids_in_paths_are_integers_and_names_strings(schema: dict[str, Any]) -> None:
    seen = set()
    for _, path, operation in operations(schema):
        for parameter in operation.get("parameters", []):
            if parameter["in"] != "path":
                continue
            name, kind = parameter["name"], parameter["schema"].get("type")
            seen.add(name)
            expected = "integer" if name.endswith("_id") else "string"
            assert kind == expected, f"{path}: {name} is {kind}"
    assert {"room_id", "message_id", "user_id", "slug", "code"} <= seen


def test_each_operation_lists_only_the_errors_it_can_give(schema: dict[str, Any]) -> None:
    for method, path, operation in operations(schema):
        label = f"{method.upper()} {path}"
        statuses = set(operation["responses"])
        public = not any(operation.get("security", []))
        has_body = "requestBody" in operation
        assert "405" not in statuses, label  # an operation is a method the path allows
        assert "429" in statuses, label  # every call is throttled
        assert ("401" in statuses) is not public, label
        assert ({"413", "415"} <= statuses) is has_body, label
        assert not ({"413", "415"} & statuses) or has_body, label
        if (method, path) in NO_403:
            assert "403" not in statuses, label
        if (method, path) in NO_404:
            assert "404" not in statuses, label
        if "410" in statuses:
            assert path.endswith("/accept"), label  # only invites are ever gone
        for status, response in operation["responses"].items():
            if status.startswith(("4", "5")):
                ref = response["content"]["application/json"]["schema"]["$ref"]
                assert ref == "#/components/schemas/Error", label
                assert response["description"], label
    assert "403" in schema["paths"]["/api/v1/communities/{slug}/bans/"]["post"]["responses"]


def test_page_is_an_integer_or_last_on_every_paged_list(schema: dict[str, Any]) -> None:
    paged = 0
    for _, path, operation in operations(schema):
        for parameter in operation.get("parameters", []):
            if parameter["name"] == "page" and parameter["in"] == "query":
                paged += 1
                variants = parameter["schema"]["oneOf"]
                assert {"type": "integer", "minimum": 1} in variants, path
                assert {"type": "string", "enum": ["last"]} in variants, path
    assert paged >= 10


@pytest.mark.django_db
def test_page_last_is_the_last_page(world: World) -> None:
    client = client_for(world.users["owner"])
    answer = client.get(f"/api/v1/communities/{world.community.slug}/members/?limit=2&page=last")
    assert answer.status_code == 200
    assert answer.json()["next"] is None
    assert len(answer.json()["results"]) == 1  # 5 members (owner to member, target): 2, 2, 1


@pytest.mark.django_db
def test_the_username_rule_is_the_servers(schema: dict[str, Any]) -> None:
    rule = component(schema, "RegisterInRequest")["properties"]["username"]
    low, high, pattern = rule["minLength"], rule["maxLength"], re.compile(rule["pattern"])
    assert (low, high) == (3, 32)
    client = APIClient()

    def register(username: str) -> int:
        body = {"username": username, "password": "wintry-otter-42"}
        status: int = client.post("/api/v1/auth/register", body, format="json").status_code
        return status

    for good in ["a" * low, "B" * high, "user_9"]:
        assert pattern.fullmatch(good)
        assert register(good) == 201, good
    for bad in ["a" * (low - 1), "c" * (high + 1), "bad-name", "dave smith", "dävid", "abc\n"]:
        assert not pattern.fullmatch(bad) or not low <= len(bad) <= high
        assert register(bad) == 400, repr(bad)


@pytest.mark.django_db
def test_the_message_limits_are_the_servers(schema: dict[str, Any], world: World) -> None:
    rules = component(schema, "MessageCreateInRequest")["properties"]
    body, msg_id = rules["body"], rules["client_msg_id"]
    assert (body["minLength"], body["maxLength"]) == (1, 4000)
    assert (msg_id["minLength"], msg_id["maxLength"]) == (1, 64)
    client = client_for(world.users["member"])
    url = f"/api/v1/rooms/{world.general.pk}/messages"

    def post(text: str, client_msg_id: str) -> int:
        answer = client.post(url, {"body": text, "client_msg_id": client_msg_id}, format="json")
        status: int = answer.status_code
        return status

    assert post("x" * body["maxLength"], "m" * msg_id["maxLength"]) == 201
    assert post("y", "n" * msg_id["minLength"]) == 201
    assert post("x" * (body["maxLength"] + 1), "over-body") == 400
    assert post("   ", "blank-body") == 400  # the pattern: at least one visible character
    assert not re.search(body["pattern"], "   ")
    assert post("hello", "o" * (msg_id["maxLength"] + 1)) == 400
    assert post("hello", "") == 400
