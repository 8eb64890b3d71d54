"""Look-alike names (docs/api.md, "Names"): no control or invisible format characters in names,
topics and descriptions; slugs unique regardless of case; community names unique after NFKC
and case folding; room names likewise within a community; usernames regardless of case. Run in
both modes: SQLite and PostgreSQL compare case differently, and the rules must not."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.test import Client
from django.utils import timezone

from communities.models import Community, Room
from communities.services import communities as community_services
from communities.services import rooms as room_services
from sphere.errors import Conflict, Forbidden
from tests.conftest import World, build_world, client_for, in_threads
from tests.factories import CommunityFactory, RoomFactory, UserFactory

pytestmark = pytest.mark.django_db

REFUSED = {
    "zero-width space": "\u200b",
    "zero-width joiner": "\u200d",
    "zero-width non-joiner": "\u200c",
    "right-to-left override": "\u202e",
    "left-to-right isolate": "\u2066",
    "pop directional isolate": "\u2069",
    "right-to-left mark": "\u200f",
    "byte order mark": "\ufeff",
    "soft hyphen": "\u00ad",
    "bell": "\x07",
    "escape": "\x1b",
    "delete": "\x7f",
    "next line": "\x85",
    "line separator": "\u2028",
}


def fullwidth(text: str) -> str:
    """``text`` in fullwidth forms (U+FF01 to U+FF5E), which NFKC turns back into ASCII."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


LINE_BREAKS = {"newline": "\n", "carriage return": "\r", "tab": "\t"}
CASES = [pytest.param(ch, id=label) for label, ch in REFUSED.items()]
SINGLE_LINE_CASES = CASES + [pytest.param(ch, id=label) for label, ch in LINE_BREAKS.items()]


def refused(response: Any, field: str) -> None:
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "invalid"
    assert set(body["fields"]) == {field}


def conflict(response: Any, field: str) -> None:
    assert response.status_code == 409, response.content
    body = response.json()
    assert body["code"] == "conflict"
    assert set(body["fields"]) == {field}


# --- Characters --------------------------------------------------------------------------------


@pytest.mark.parametrize("ch", SINGLE_LINE_CASES)
def test_a_community_name_with_a_control_or_format_character_is_refused(user: Any, ch: str) -> None:
    response = client_for(user).post(
        "/api/v1/communities/", {"name": f"Sphere{ch}Lounge"}, format="json"
    )
    refused(response, "name")
    assert not Community.objects.exists()


@pytest.mark.parametrize("ch", CASES)
def test_a_description_refuses_format_characters_but_keeps_line_breaks(user: Any, ch: str) -> None:
    client = client_for(user)
    response = client.post(
        "/api/v1/communities/", {"name": "Lounge", "description": f"a{ch}b"}, format="json"
    )
    refused(response, "description")
    multiline = "First line\r\nsecond\tline"
    response = client.post(
        "/api/v1/communities/", {"name": "Lounge", "description": multiline}, format="json"
    )
    assert response.status_code == 201, response.content
    assert response.json()["description"] == multiline


@pytest.mark.parametrize("ch", SINGLE_LINE_CASES)
def test_renaming_a_community_checks_name_and_description(world: World, ch: str) -> None:
    url = f"/api/v1/communities/{world.community.slug}/"
    client = world.client("admin")
    refused(client.patch(url, {"name": f"Sph{ch}ere"}, format="json"), "name")
    if ch not in LINE_BREAKS.values():
        refused(client.patch(url, {"description": f"x{ch}y"}, format="json"), "description")
    before = (world.community.name, world.community.description)
    world.community.refresh_from_db()
    assert (world.community.name, world.community.description) == before


@pytest.mark.parametrize("ch", SINGLE_LINE_CASES)
def test_room_names_and_topics_are_one_line_of_visible_text(world: World, ch: str) -> None:
    client = world.client("admin")
    rooms_url = f"/api/v1/communities/{world.community.slug}/rooms/"
    refused(client.post(rooms_url, {"name": f"o{ch}ps"}, format="json"), "name")
    refused(client.post(rooms_url, {"name": "ops", "topic": f"a{ch}b"}, format="json"), "topic")
    room_url = f"/api/v1/rooms/{world.general.pk}/"
    refused(client.patch(room_url, {"name": f"gen{ch}eral"}, format="json"), "name")
    refused(client.patch(room_url, {"topic": f"a{ch}b"}, format="json"), "topic")
    assert not Room.objects.filter(name__startswith="ops").exists()
    world.general.refresh_from_db()
    assert (world.general.name, world.general.topic) == ("general", "")


def test_permission_comes_before_the_character_rules(world: World) -> None:
    """A moderator may change slow mode only: a bad topic is their 403, not a 400."""
    response = world.client("moderator").patch(
        f"/api/v1/rooms/{world.general.pk}/", {"topic": "a\u202eb"}, format="json"
    )
    assert response.status_code == 403
    with pytest.raises(Forbidden):
        room_services.room_create(
            actor=world.users["moderator"], community=world.community, name="o\u200bps"
        )


def test_visible_text_is_kept_as_written(world: World) -> None:
    """Emoji, accents, right-to-left scripts and inner spaces are fine."""
    client = world.client("admin")
    rooms_url = f"/api/v1/communities/{world.community.slug}/rooms/"
    response = client.post(
        rooms_url, {"name": "café ☕ שלום", "topic": "Ünïcode — fine 👍"}, format="json"
    )
    assert response.status_code == 201, response.content
    assert (response.json()["name"], response.json()["topic"]) == (
        "café ☕ שלום",
        "Ünïcode — fine 👍",
    )


# --- Slugs -------------------------------------------------------------------------------------


def test_a_requested_slug_is_stored_in_lower_case(user: Any) -> None:
    client = client_for(user)
    response = client.post(
        "/api/v1/communities/", {"name": "Lounge", "slug": "SPHERE-Lounge"}, format="json"
    )
    assert response.status_code == 201, response.content
    assert response.json()["slug"] == "sphere-lounge"
    assert client.get("/api/v1/communities/sphere-lounge/").status_code == 200
    again = client.post(
        "/api/v1/communities/", {"name": "Other", "slug": "sphere-LOUNGE"}, format="json"
    )
    conflict(again, "slug")


def test_a_stored_mixed_case_slug_keeps_its_url_and_blocks_its_other_cases(user: Any) -> None:
    legacy = CommunityFactory(slug="Old-Lounge")
    client = client_for(user)
    assert client.get("/api/v1/communities/Old-Lounge/").json()["slug"] == "Old-Lounge"
    response = client.post(
        "/api/v1/communities/", {"name": "New", "slug": "old-lounge"}, format="json"
    )
    conflict(response, "slug")
    # A slug derived from the name steps around it too.
    derived = community_services.community_create(actor=user, name="Old lounge!")
    assert derived.slug == "old-lounge-2"
    assert Community.objects.filter(slug__iexact="old-lounge").get() == legacy


def test_the_database_refuses_slugs_that_differ_only_by_case() -> None:
    CommunityFactory(slug="chess")
    with pytest.raises(IntegrityError), transaction.atomic():
        CommunityFactory(slug="CHESS")


# --- Community names ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "second",
    [
        "sphere lounge",
        "SPHERE LOUNGE",
        "  Sphere   Lounge ",
        fullwidth("Sphere Lounge"),
        "Sphere\u3000Lounge",
    ],
)
def test_community_names_are_unique_after_normalization(user: Any, second: str) -> None:
    client = client_for(user)
    assert (
        client.post("/api/v1/communities/", {"name": "Sphere Lounge"}, format="json").status_code
        == 201
    )
    conflict(client.post("/api/v1/communities/", {"name": second}, format="json"), "name")
    assert Community.objects.count() == 1


def test_case_folding_goes_beyond_lower_case(user: Any) -> None:
    community_services.community_create(actor=user, name="Straße")
    with pytest.raises(Conflict) as caught:
        community_services.community_create(actor=user, name="STRASSE")
    assert caught.value.fields == {"name": ["This name is taken."]}
    community_services.community_create(actor=user, name="ÉCOLE")
    with pytest.raises(Conflict):
        community_services.community_create(actor=user, name="école")


def test_renaming_onto_another_community_name_is_a_conflict(world: World) -> None:
    CommunityFactory(name="Chess Club")
    url = f"/api/v1/communities/{world.community.slug}/"
    client = world.client("admin")
    conflict(client.patch(url, {"name": "chess  CLUB"}, format="json"), "name")
    world.community.refresh_from_db()
    assert world.community.name != "chess  CLUB"
    # Its own name in another case is no conflict.
    response = client.patch(url, {"name": world.community.name.upper()}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["name"] == world.community.name.upper()


def test_the_database_refuses_two_community_names_with_one_key() -> None:
    CommunityFactory(name="Go Users")
    with pytest.raises(IntegrityError), transaction.atomic():
        CommunityFactory(name="GO USERS")


def test_a_name_too_long_once_normalized_is_refused(user: Any) -> None:
    # U+FDFA is one character that NFKC turns into eighteen.
    response = client_for(user).post(
        "/api/v1/communities/", {"name": "\ufdfa" * 100}, format="json"
    )
    refused(response, "name")


# --- Room names --------------------------------------------------------------------------------


@pytest.mark.parametrize("second", ["GENERAL", fullwidth("General"), "general "])
def test_room_names_are_unique_in_their_community_after_normalization(
    world: World, second: str
) -> None:
    rooms_url = f"/api/v1/communities/{world.community.slug}/rooms/"
    conflict(world.client("admin").post(rooms_url, {"name": second}, format="json"), "name")


def test_non_ascii_room_names_differ_only_by_case_in_both_databases(world: World) -> None:
    """SQLite's lower() knows ASCII only; the service compares the same way on both."""
    client = world.client("admin")
    rooms_url = f"/api/v1/communities/{world.community.slug}/rooms/"
    assert client.post(rooms_url, {"name": "Élan"}, format="json").status_code == 201
    conflict(client.post(rooms_url, {"name": "éLAN"}, format="json"), "name")
    response = client.patch(
        f"/api/v1/rooms/{world.private_room.pk}/", {"name": "ÉLAN"}, format="json"
    )
    conflict(response, "name")
    # A room keeps its own name in another case; another community may use the name.
    response = client.patch(
        f"/api/v1/rooms/{world.general.pk}/", {"name": "General"}, format="json"
    )
    assert response.status_code == 200, response.content
    other = RoomFactory(name="élan")
    assert other.community != world.community


# --- Usernames ---------------------------------------------------------------------------------


def test_usernames_are_unique_regardless_of_case() -> None:
    client = Client()
    first = client.post(
        "/api/v1/auth/register",
        {"username": "Alice", "password": "correct horse battery"},
        content_type="application/json",
    )
    assert first.status_code == 201
    second = client.post(
        "/api/v1/auth/register",
        {"username": "aLICE", "password": "correct horse battery"},
        content_type="application/json",
    )
    assert second.status_code == 400
    assert second.json()["fields"] == {"username": ["This username is taken."]}


def test_the_database_refuses_usernames_that_differ_only_by_case() -> None:
    UserFactory(username="bob")
    with pytest.raises(IntegrityError), transaction.atomic():
        UserFactory(username="BOB")


# --- The admin ---------------------------------------------------------------------------------


@pytest.fixture
def superuser() -> Client:
    client = Client()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def test_the_admin_cannot_rename_a_user_onto_another_case(superuser: Client) -> None:
    UserFactory(username="carol")
    dave = UserFactory(username="dave")
    joined = timezone.localtime(dave.date_joined)
    response = superuser.post(
        f"/admin/auth/user/{dave.pk}/change/",
        {
            "username": "CAROL",
            "is_active": "on",
            "date_joined_0": joined.strftime("%Y-%m-%d"),
            "date_joined_1": joined.strftime("%H:%M:%S"),
            "initial-date_joined_0": joined.strftime("%Y-%m-%d"),
            "initial-date_joined_1": joined.strftime("%H:%M:%S"),
        },
    )
    assert response.status_code == 200  # the form again, with its error
    assert "already exists" in response.content.decode()
    dave.refresh_from_db()
    assert dave.username == "dave"


def test_the_admin_cannot_add_a_user_in_another_case(superuser: Client) -> None:
    UserFactory(username="erin")
    response = superuser.post(
        "/admin/auth/user/add/",
        {
            "username": "ERIN",
            "password1": "correct horse battery",
            "password2": "correct horse battery",
            "usable_password": "true",
        },
    )
    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    assert not User.objects.filter(username="ERIN").exists()


def test_the_admin_does_not_change_names_or_topics(superuser: Client, world: World) -> None:
    """Names, topics and descriptions are read-only at the desk: a forged post changes nothing
    and fails with no error page; they change through the API, by the rules above."""
    url = f"/admin/communities/room/{world.general.pk}/change/"
    response = superuser.post(
        url, {"name": "general\u202e", "topic": "x\u200b", "slow_mode_s": "0"}
    )
    assert response.status_code in {200, 302}
    world.general.refresh_from_db()
    assert (world.general.name, world.general.topic) == ("general", "")
    url = f"/admin/communities/community/{world.community.pk}/change/"
    before = world.community.name
    response = superuser.post(url, {"name": "evil\u202e", "description": "\u200b"})
    assert response.status_code in {200, 302, 403}
    world.community.refresh_from_db()
    assert world.community.name == before


# --- The migration that fits stored rows -------------------------------------------------------


def test_the_migration_renames_look_alike_names_and_refuses_case_duplicates() -> None:
    migration = importlib.import_module("communities.migrations.0004_community_name_key")
    assert migration.fitted_names(["Chess", "CHESS", "Go", "chess", fullwidth("Chess (2)")]) == [
        "Chess",
        "CHESS (2)",
        "Go",
        "chess (3)",
        fullwidth("Chess (2)") + " (2)",
    ]
    assert migration.fitted_names(["x" * 100, "X" * 100]) == ["x" * 100, "X" * 96 + " (2)"]
    # A look-alike stored before format characters were refused is one too.
    assert migration.fitted_names(["Go", "G\u200bo"]) == ["Go", "G\u200bo (2)"]
    assert migration.case_duplicates(
        ["old-lounge", "Old-Lounge", "chess", "OLD-LOUNGE"], "Slugs"
    ) == (
        "Slugs must be unique regardless of case; these differ only by case: "
        "OLD-LOUNGE, Old-Lounge, old-lounge."
    )
    assert migration.case_duplicates(["a", "b"], "Usernames") == ""


# --- Races (PostgreSQL) ------------------------------------------------------------------------


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_concurrent_creations_of_one_name_make_one_community() -> None:
    users = [UserFactory() for _ in range(6)]
    results = in_threads(
        [
            lambda u=u, i=i: community_services.community_create(
                actor=u, name="Race" if i % 2 else "RACE"
            )
            for i, u in enumerate(users)
        ]
    )
    made = [r for r in results if isinstance(r, Community)]
    assert len(made) == 1
    assert all(getattr(r, "code", None) == "conflict" for r in results if r not in made)
    assert Community.objects.count() == 1


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_concurrent_rooms_of_one_name_make_one_room() -> None:
    world = build_world()
    admin = world.users["admin"]
    results = in_threads(
        [
            lambda i=i: room_services.room_create(
                actor=admin, community=world.community, name="ops" if i % 2 else "OPS"
            )
            for i in range(6)
        ]
    )
    assert len([r for r in results if isinstance(r, Room)]) == 1
    assert Room.objects.filter(community=world.community, name__iexact="ops").count() == 1
