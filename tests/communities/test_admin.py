"""The moderators' desk: every model's pages render for a desk moderator (list, change,
search, filters) at a cost that does not grow with the rows, only staff get in, a moderator
sees only the communities they moderate, and changes go through the services."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.test import Client
from django.utils import timezone

from chat.models import BlockedTerm, Message, Reaction, ReadMarker, Report, RoomEvent
from chat.services.messages import message_post
from communities.models import (
    AuditEntry,
    Ban,
    Community,
    Invite,
    JoinRequest,
    Membership,
    Room,
    RoomMember,
)
from communities.services.desk import DESK_PERMISSIONS, MODERATORS, desk_grant
from tests.conftest import World, build_world
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

DESK_MODELS = [
    Community, Membership, Room, RoomMember, Ban, Invite, JoinRequest, AuditEntry,
    Message, Report, BlockedTerm, RoomEvent, Reaction, ReadMarker,
]  # fmt: skip


def path(model: Any) -> str:
    return f"/admin/{model._meta.app_label}/{model._meta.model_name}/"


@pytest.fixture
def desk(world: World) -> Client:
    """The world's moderator, made a desk moderator (staff, in the Moderators group)."""
    desk_grant(user=world.users["moderator"])
    client = Client()
    client.force_login(world.users["moderator"])
    return client


ADMINS_ONLY = {Invite, JoinRequest}  # the admins', as in the API: not on the moderators' desk


@pytest.fixture
def superuser() -> Client:
    client = Client()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def fill(world: World, n: int, settings: Any) -> None:
    """``n`` more rows of every kind in the world's community."""
    settings.MESSAGE_RATE = "100000/min"
    for i in range(n):
        key = f"{Room.objects.count()}-{i}"
        user = MembershipFactory(community=world.community).user
        room = Room.objects.create(community=world.community, name=f"fill-{key}")
        RoomMember.objects.create(room=world.private_room, user=user)
        Ban.objects.create(community=world.community, user=UserFactory(), by=user)
        Invite.objects.create(community=world.community, code=f"fill-{key}", created_by=user)
        JoinRequest.objects.create(community=world.community, user=UserFactory())
        AuditEntry.objects.create(
            community=world.community, community_slug="x", actor=user, action="member.kick"
        )
        message, _ = message_post(actor=user, room=room, body=f"m {key}", client_msg_id=key)
        Report.objects.create(message=message, reporter=user, reason="r")
        Reaction.objects.create(message=message, user=user, emoji="👍")
        ReadMarker.objects.create(room=room, user=user, seq=1)
        BlockedTerm.objects.create(community=world.community, term=f"t{key}")


def test_every_model_of_the_apps_is_on_the_desk() -> None:
    registered = {model for model in admin.site._registry}
    assert set(DESK_MODELS) <= registered


@pytest.mark.parametrize("model", DESK_MODELS, ids=lambda m: m._meta.model_name)
def test_pages_render_for_a_desk_moderator(
    desk: Client, superuser: Client, world: World, model: Any, settings: Any
) -> None:
    fill(world, 1, settings)
    if model in ADMINS_ONLY:
        assert desk.get(path(model)).status_code == 403
        desk = superuser
    listing = desk.get(path(model))
    assert listing.status_code == 200
    assert desk.get(path(model), {"q": "a"}).status_code == 200
    changelist = listing.context["cl"]  # filters with a single choice are not shown
    for spec in changelist.filter_specs:
        for choice in list(spec.choices(changelist))[:3]:
            assert desk.get(path(model) + choice["query_string"]).status_code == 200
    row = model.objects.filter(**_in_world(model, world)).first()
    assert row is not None
    assert desk.get(f"{path(model)}{row.pk}/change/").status_code == 200


def _in_world(model: Any, world: World) -> dict[str, Any]:
    lookup = admin.site._registry[model].community_path
    return {lookup: world.community.pk} if lookup != "pk" else {"pk": world.community.pk}


@pytest.mark.parametrize("model", DESK_MODELS, ids=lambda m: m._meta.model_name)
def test_list_pages_cost_the_same_whatever_the_rows(
    desk: Client, superuser: Client, world: World, model: Any, settings: Any
) -> None:
    if model in ADMINS_ONLY:
        desk = superuser
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def cost() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert desk.get(path(model)).status_code == 200
        return len(queries)

    fill(world, 1, settings)
    few = cost()
    fill(world, 6, settings)
    assert cost() == few


@pytest.mark.parametrize(
    "model", [Membership, Report, Message], ids=["membership", "report", "message"]
)
def test_the_desk_is_refused_to_non_staff(world: World, model: Any) -> None:
    client = Client()
    client.force_login(world.users["owner"])  # the community's owner, not staff
    response = client.get(path(model))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_the_moderators_group_has_exactly_the_desk_s_permissions(world: World) -> None:
    desk_grant(user=world.users["moderator"])
    group = Group.objects.get(name=MODERATORS)
    granted = {
        (p.content_type.app_label, p.codename)
        for p in group.permissions.select_related("content_type")
    }
    assert granted == set(DESK_PERMISSIONS)
    moderator = world.users["moderator"]
    moderator.refresh_from_db()
    assert moderator.is_staff
    assert not moderator.is_superuser
    assert not moderator.has_perm("communities.delete_community")
    assert not moderator.has_perm("auth.view_user")


def test_a_desk_moderator_sees_only_the_communities_they_moderate(
    desk: Client, world: World, superuser: Client
) -> None:
    other = build_world("public")
    message_post(
        actor=other.users["member"], room=other.general, body="elsewhere", client_msg_id="e"
    )
    message_post(actor=world.users["member"], room=world.general, body="at home", client_msg_id="h")
    message_post(
        actor=world.users["admin"], room=world.private_room, body="behind doors", client_msg_id="p"
    )
    page = desk.get(path(Message)).content.decode()
    assert "at home" in page
    assert "elsewhere" not in page
    assert "behind doors" in page  # the moderator is a member of the private room
    RoomMember.objects.filter(room=world.private_room, user=world.users["moderator"]).delete()
    assert "behind doors" not in desk.get(path(Message)).content.decode()
    other_message = Message.objects.get(body="elsewhere")
    assert desk.get(f"{path(Message)}{other_message.pk}/change/").status_code == 302
    assert "elsewhere" in superuser.get(path(Message)).content.decode()


def test_rows_are_never_deleted_directly(desk: Client, world: World) -> None:
    message, _ = message_post(
        actor=world.users["member"], room=world.general, body="stays", client_msg_id="s"
    )
    response = desk.post(
        path(Message), {"action": "delete_selected", "_selected_action": [message.pk]}
    )
    assert response.status_code in {200, 302}
    assert Message.objects.filter(pk=message.pk, deleted=False).exists()
    assert desk.get(f"{path(Message)}{message.pk}/delete/").status_code == 403


def test_a_role_cannot_be_edited_directly(desk: Client, world: World) -> None:
    membership = Membership.objects.get(user=world.target)
    url = f"{path(Membership)}{membership.pk}/change/"
    assert desk.get(url).status_code == 200
    desk.post(url, {"role": "owner", "muted_until_0": "", "muted_until_1": ""})
    membership.refresh_from_db()
    assert membership.role == "member"


def test_a_mute_set_at_the_desk_goes_through_the_service(desk: Client, world: World) -> None:
    membership = Membership.objects.get(user=world.target)
    until = timezone.localtime(timezone.now() + timedelta(hours=2))
    response = desk.post(
        f"{path(Membership)}{membership.pk}/change/",
        {"muted_until_0": until.strftime("%Y-%m-%d"), "muted_until_1": until.strftime("%H:%M:%S")},
    )
    assert response.status_code == 302
    membership.refresh_from_db()
    assert membership.muted_until is not None
    assert abs((membership.muted_until - until).total_seconds()) <= 61
    entry = AuditEntry.objects.get(action="member.mute")
    assert entry.actor == world.users["moderator"]


def test_mute_actions_keep_the_rank_rule(desk: Client, world: World) -> None:
    lower = Membership.objects.get(user=world.target)
    higher = Membership.objects.get(user=world.users["admin"])
    response = desk.post(
        path(Membership),
        {"action": "mute_1h", "_selected_action": [lower.pk, higher.pk]},
        follow=True,
    )
    lower.refresh_from_db()
    higher.refresh_from_db()
    assert lower.muted_until is not None
    assert higher.muted_until is None  # a moderator does not outrank an admin
    assert "refused" in response.content.decode()


def test_slow_mode_set_at_the_desk_goes_through_the_service(desk: Client, world: World) -> None:
    url = f"{path(Room)}{world.general.pk}/change/"
    assert desk.post(url, {"slow_mode_s": "30"}).status_code == 302
    world.general.refresh_from_db()
    assert world.general.slow_mode_s == 30
    assert AuditEntry.objects.filter(action="room.update", actor=world.users["moderator"]).exists()


def test_the_audit_log_is_read_only_even_for_a_superuser(superuser: Client, world: World) -> None:
    entry = AuditEntry.objects.create(
        community=world.community, community_slug=world.community.slug,
        actor=world.users["owner"], action="member.kick",
    )  # fmt: skip
    url = f"{path(AuditEntry)}{entry.pk}/change/"
    superuser.post(url, {"action": "member.ban"})
    entry.refresh_from_db()
    assert entry.action == "member.kick"
    assert superuser.get(f"{path(AuditEntry)}{entry.pk}/delete/").status_code == 403
    listing = superuser.get(
        path(AuditEntry), {"action": "member.kick", "actor__id__exact": world.users["owner"].pk}
    )
    assert listing.status_code == 200
    assert "member.kick" in listing.content.decode()


def test_filters_list_only_what_the_moderator_may_see(desk: Client, world: World) -> None:
    other = build_world("private")
    other.community.name = "Hidden Elsewhere"
    other.community.save()
    Room.objects.filter(pk=other.private_room.pk).update(name="elsewhere-secret")
    for model in (Membership, Room, Message, Report):
        page = desk.get(path(model)).content.decode()
        assert "Hidden Elsewhere" not in page
        assert "elsewhere-secret" not in page


def test_a_ban_is_lifted_through_its_service_never_deleted(desk: Client, world: World) -> None:
    ban = Ban.objects.get(user=world.users["banned"])
    assert desk.get(f"{path(Ban)}{ban.pk}/delete/").status_code == 403
    desk.post(path(Ban), {"action": "lift", "_selected_action": [ban.pk]})
    assert not Ban.objects.filter(pk=ban.pk).exists()
    entry = AuditEntry.objects.get(action="member.unban")
    assert entry.actor == world.users["moderator"]


def test_an_admin_at_the_desk_sees_a_private_room_once(world: World) -> None:
    admin_user = world.users["admin"]
    desk_grant(user=admin_user)
    for _ in range(3):
        RoomMember.objects.create(room=world.private_room, user=MembershipFactory(
            community=world.community).user)  # fmt: skip
    client = Client()
    client.force_login(admin_user)
    listing = client.get(path(Room))
    assert listing.context["cl"].result_count == 2  # general and secret, once each
    assert client.get(f"{path(Room)}{world.private_room.pk}/change/").status_code == 200


def test_a_refused_change_claims_no_success(desk: Client, world: World) -> None:
    higher = Membership.objects.get(user=world.users["admin"])
    until = timezone.localtime(timezone.now() + timedelta(hours=1))
    response = desk.post(
        f"{path(Membership)}{higher.pk}/change/",
        {"muted_until_0": until.strftime("%Y-%m-%d"), "muted_until_1": until.strftime("%H:%M:%S")},
        follow=True,
    )
    page = response.content.decode()
    assert "refused" in page
    assert "was changed successfully" not in page
    higher.refresh_from_db()
    assert higher.muted_until is None
