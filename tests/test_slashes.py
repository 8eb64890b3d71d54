"""Every path under /api/v1/ answers with and without its trailing slash, with the same view and
no redirect; the OpenAPI schema lists each path once, in its documented form (docs/api.md,
Paths)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from drf_spectacular.generators import SchemaGenerator

from tests.chat.conftest import new_client_msg_id
from tests.conftest import World, client_for

pytestmark = pytest.mark.django_db

API = "api/v1/"
# A value for each converter; the objects need not exist: both forms must answer alike.
SAMPLES = {"id": "987654", "slug": "no-such-community", "code": "NoSuchCode", "str": "x"}
PARAMETER = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>[^>]+)>")


def routes(patterns: list[Any], prefix: str = "") -> Iterator[str]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from routes(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern)


API_ROUTES = sorted(
    {route for route in routes(get_resolver().url_patterns) if route.startswith(API)}
)


def concrete(route: str) -> str:
    return "/" + PARAMETER.sub(lambda m: SAMPLES[m["converter"] or "str"], route)


def both_forms(route: str) -> tuple[str, str]:
    path = concrete(route).rstrip("/")
    return path, path + "/"


def test_the_walk_finds_the_api() -> None:
    assert len(API_ROUTES) > 30
    assert "api/v1/rooms/<id:room_id>/messages" in API_ROUTES
    assert "api/v1/communities/" in API_ROUTES


@pytest.mark.parametrize("route", API_ROUTES)
def test_both_forms_resolve_to_the_same_view(route: str) -> None:
    bare, slashed = both_forms(route)
    one, other = resolve(bare), resolve(slashed)
    assert one.func is other.func
    assert one.kwargs == other.kwargs


def shape(response: Any) -> tuple[int, Any]:
    """The status, and the error body or the keys of a success (tickets and the like differ)."""
    if not response.content:
        return response.status_code, None
    body = response.json()
    if response.status_code >= 400 or not isinstance(body, dict):
        return response.status_code, body
    return response.status_code, sorted(body)


@pytest.mark.parametrize("route", API_ROUTES)
def test_both_forms_answer_the_same(route: str, world: World) -> None:
    bare, slashed = both_forms(route)
    member = world.users["member"]
    for method in ["get", "post", "delete"]:
        # A fresh token each time: logging out or deleting the token revokes it.
        one = getattr(client_for(member), method)(bare, {}, format="json")
        other = getattr(client_for(member), method)(slashed, {}, format="json")
        assert one.status_code not in (301, 302, 307, 308), (method, bare)
        assert shape(one) == shape(other), method


def test_a_post_without_the_documented_slash_keeps_its_body(world: World) -> None:
    """``/communities/`` is documented with the slash, ``/rooms/{id}/messages`` without: the
    other forms create as well, with no redirect that would lose the body."""
    client = world.client("member")
    created = client.post("/api/v1/communities", {"name": "No Slash"}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["name"] == "No Slash"
    url = f"/api/v1/rooms/{world.general.pk}/messages/"
    body = {"body": "with a slash", "client_msg_id": new_client_msg_id()}
    sent = client.post(url, body, format="json")
    assert sent.status_code == 201, sent.content
    assert sent.json()["body"] == "with a slash"
    edited = client.patch(f"/api/v1/messages/{sent.json()['id']}", {"body": "e"}, format="json")
    assert (edited.status_code, edited.json()["body"]) == (200, "e")


def test_the_schema_lists_each_path_once_in_its_documented_form() -> None:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    paths = [p for p in schema["paths"] if p.startswith("/api/v1/")]
    assert len({p.rstrip("/") for p in paths}) == len(paths)
    # The documented forms, with and without the slash.
    assert "/api/v1/communities/" in paths
    assert "/api/v1/rooms/{room_id}/messages" in paths
    assert "/api/v1/invites/{code}" in paths
    assert "/api/v1/messages/{message_id}/reactions/{emoji}/" in paths
