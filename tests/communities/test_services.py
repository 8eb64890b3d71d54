"""The rules of the communities services, asserted on the database state and the audit log."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from communities.models import AuditEntry, Ban, Community, JoinRequest, Membership, Room, RoomMember
from communities.services import communities as community_services
from communities.services import members, moderation, rooms
from sphere.errors import Banned, Conflict, Forbidden, Invalid, NotFound
from tests.conftest import World
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def role_of(world: World, user: Any) -> str | None:
    membership = Membership.objects.filter(community=world.community, user=user).first()
    return membership.role if membership else None


def last_audit(world: World) -> AuditEntry:
    entry = AuditEntry.objects.filter(community_slug=world.community.slug).first()  # newest first
    assert entry is not None
    return entry


def test_community_create_makes_owner_general_room_and_audit(user: Any) -> None:
    community = community_services.community_create(actor=user, name="Rust Folk")
    assert community.slug == "rust-folk"
    assert Membership.objects.get(community=community).role == "owner"
    assert list(Room.objects.filter(community=community).values_list("name", flat=True)) == [
        "general"
    ]
    assert AuditEntry.objects.get(community=community).action == "community.create"


def test_community_create_derives_a_free_slug_and_refuses_a_taken_one(user: Any) -> None:
    community_services.community_create(actor=user, name="Chess")
    second = community_services.community_create(actor=user, name="Chess!")  # names differ
    assert second.slug == "chess-2"
    with pytest.raises(Conflict):
        community_services.community_create(actor=user, name="Other", slug="chess")
    assert Community.objects.count() == 2


def test_admin_grants_moderator_but_not_admin(world: World) -> None:
    admin = world.users["admin"]
    members.member_set_role(
        actor=admin, community=world.community, user_id=world.target.pk, role="moderator"
    )
    assert role_of(world, world.target) == "moderator"
    entry = last_audit(world)
    assert (entry.action, entry.target, entry.detail) == (
        "member.role",
        f"user:{world.target.pk}",
        {"from": "member", "to": "moderator"},
    )
    with pytest.raises(Forbidden):
        members.member_set_role(
            actor=admin, community=world.community, user_id=world.target.pk, role="admin"
        )
    assert role_of(world, world.target) == "moderator"


@pytest.mark.parametrize(
    ("actor", "target"),
    [("admin", "admin2"), ("moderator", "member"), ("admin", "owner"), ("owner", "owner")],
)
def test_role_change_needs_admin_and_a_lower_target(world: World, actor: str, target: str) -> None:
    if target == "admin2":
        target_user = UserFactory()
        Membership.objects.create(community=world.community, user=target_user, role="admin")
    else:
        target_user = world.users[target]
    before = role_of(world, target_user)
    with pytest.raises(Forbidden):
        members.member_set_role(
            actor=world.users[actor],
            community=world.community,
            user_id=target_user.pk,
            role="member",
        )
    assert role_of(world, target_user) == before


def test_owner_transfers_ownership_by_granting_owner(world: World) -> None:
    owner, admin = world.users["owner"], world.users["admin"]
    members.member_set_role(actor=owner, community=world.community, user_id=admin.pk, role="owner")
    assert role_of(world, admin) == "owner"
    assert role_of(world, owner) == "admin"
    assert Membership.objects.filter(community=world.community, role="owner").count() == 1
    # The old owner now ranks below and can no longer act on the new one.
    with pytest.raises(Forbidden):
        members.member_kick(actor=owner, community=world.community, user_id=admin.pk)


def test_owner_cannot_leave_but_a_member_can_and_loses_private_rooms(world: World) -> None:
    with pytest.raises(Conflict):
        members.community_leave(actor=world.users["owner"], community=world.community)
    moderator = world.users["moderator"]
    members.community_leave(actor=moderator, community=world.community)
    assert role_of(world, moderator) is None
    assert not RoomMember.objects.filter(user=moderator).exists()


def test_kick_by_rank_and_its_audit(world: World) -> None:
    moderator = world.users["moderator"]
    with pytest.raises(Forbidden):
        members.member_kick(
            actor=moderator, community=world.community, user_id=world.users["admin"].pk
        )
    members.member_kick(actor=moderator, community=world.community, user_id=world.target.pk)
    assert role_of(world, world.target) is None
    assert last_audit(world).action == "member.kick"
    with pytest.raises(NotFound):
        members.member_kick(actor=moderator, community=world.community, user_id=world.target.pk)


def test_mute_sets_muted_until_and_unmute_clears_it(world: World) -> None:
    before = timezone.now()
    membership = members.member_mute(
        actor=world.users["moderator"],
        community=world.community,
        user_id=world.target.pk,
        minutes=30,
    )
    assert membership.muted_until is not None
    assert before + timedelta(minutes=30) <= membership.muted_until
    assert membership.muted_until <= timezone.now() + timedelta(minutes=30)
    assert last_audit(world).action == "member.mute"
    members.member_unmute(
        actor=world.users["moderator"], community=world.community, user_id=world.target.pk
    )
    assert Membership.objects.get(community=world.community, user=world.target).muted_until is None
    assert last_audit(world).action == "member.unmute"


@pytest.mark.parametrize("minutes", [0, -5, 28 * 24 * 60 + 1])
def test_mute_duration_is_bounded(world: World, minutes: int) -> None:
    with pytest.raises(Invalid):
        members.member_mute(
            actor=world.users["owner"],
            community=world.community,
            user_id=world.target.pk,
            minutes=minutes,
        )


def test_ban_ends_membership_and_private_rooms_and_blocks_joining(world: World) -> None:
    moderator, target = world.users["moderator"], world.target
    RoomMember.objects.create(room=world.private_room, user=target)
    ban = moderation.ban_create(
        actor=moderator, community=world.community, user_id=target.pk, reason="spam"
    )
    assert (ban.reason, ban.by) == ("spam", moderator)
    assert role_of(world, target) is None
    assert not RoomMember.objects.filter(user=target).exists()
    assert last_audit(world).action == "member.ban"
    with pytest.raises(Banned):
        members.community_join(actor=target, community=world.community)
    with pytest.raises(Conflict):
        moderation.ban_create(actor=moderator, community=world.community, user_id=target.pk)


def test_ban_may_precede_a_join_and_unban_lets_them_in(world: World) -> None:
    stranger = UserFactory()
    moderation.ban_create(
        actor=world.users["moderator"], community=world.community, user_id=stranger.pk
    )
    with pytest.raises(Banned):
        members.community_join(actor=stranger, community=world.community)
    moderation.ban_lift(
        actor=world.users["moderator"], community=world.community, user_id=stranger.pk
    )
    assert last_audit(world).action == "member.unban"
    members.community_join(actor=stranger, community=world.community)
    assert role_of(world, stranger) == "member"


def test_moderator_cannot_ban_a_moderator_or_above(world: World) -> None:
    for standing in ["moderator", "admin", "owner"]:
        with pytest.raises(Forbidden):
            moderation.ban_create(
                actor=world.users["moderator"],
                community=world.community,
                user_id=world.users[standing].pk,
            )
    assert not Ban.objects.filter(user=world.users["admin"]).exists()


def test_ban_of_an_unknown_user_is_invalid(world: World) -> None:
    with pytest.raises(Invalid):
        moderation.ban_create(actor=world.users["owner"], community=world.community, user_id=10**12)


def test_private_join_request_then_approve(private_world: World) -> None:
    world, applicant = private_world, UserFactory()
    request = members.community_join(actor=applicant, community=world.community)
    assert isinstance(request, JoinRequest)
    assert members.community_join(actor=applicant, community=world.community) == request
    assert role_of(world, applicant) is None
    membership = moderation.join_request_approve(
        actor=world.users["admin"], community=world.community, request_id=request.pk
    )
    assert (membership.user, membership.role) == (applicant, "member")
    assert not JoinRequest.objects.filter(pk=request.pk).exists()
    assert last_audit(world).action == "joinrequest.approve"


def test_private_join_request_deny(private_world: World) -> None:
    world, applicant = private_world, UserFactory()
    request = members.community_join(actor=applicant, community=world.community)
    moderation.join_request_deny(
        actor=world.users["admin"], community=world.community, request_id=request.pk
    )
    assert role_of(world, applicant) is None
    assert not JoinRequest.objects.exists()
    with pytest.raises(NotFound):
        moderation.join_request_deny(
            actor=world.users["admin"], community=world.community, request_id=request.pk
        )


def test_banning_drops_a_pending_join_request(private_world: World) -> None:
    world, applicant = private_world, UserFactory()
    members.community_join(actor=applicant, community=world.community)
    moderation.ban_create(
        actor=world.users["moderator"], community=world.community, user_id=applicant.pk
    )
    assert not JoinRequest.objects.filter(user=applicant).exists()


def test_room_names_are_unique_per_community_ignoring_case(world: World) -> None:
    rooms.room_create(actor=world.users["admin"], community=world.community, name="Ideas")
    with pytest.raises(Conflict):
        rooms.room_create(actor=world.users["admin"], community=world.community, name="ideas")
    with pytest.raises(Conflict):
        rooms.room_update(actor=world.users["admin"], room=world.general, changes={"name": "IDEAS"})


def test_room_update_moderator_only_slow_mode(world: World) -> None:
    moderator = world.users["moderator"]
    room = rooms.room_update(actor=moderator, room=world.general, changes={"slow_mode_s": 10})
    assert room.slow_mode_s == 10
    entry = last_audit(world)
    assert (entry.action, entry.detail) == (
        "room.update",
        {"before": {"slow_mode_s": 0}, "after": {"slow_mode_s": 10}},
    )
    with pytest.raises(Forbidden):
        rooms.room_update(
            actor=moderator, room=world.general, changes={"slow_mode_s": 5, "topic": "x"}
        )
    with pytest.raises(Invalid):
        rooms.room_update(
            actor=world.users["admin"], room=world.general, changes={"slow_mode_s": 6 * 3600 + 1}
        )
    assert Room.objects.get(pk=world.general.pk).slow_mode_s == 10


def test_room_create_and_delete_are_audited(world: World) -> None:
    room = rooms.room_create(
        actor=world.users["admin"], community=world.community, name="x", private=True
    )
    assert last_audit(world).action == "room.create"
    rooms.room_delete(actor=world.users["admin"], room=room)
    assert last_audit(world).action == "room.delete"
    assert not Room.objects.filter(pk=room.pk).exists()


def test_private_room_members_must_be_community_members(world: World) -> None:
    with pytest.raises(Invalid):
        rooms.room_member_add(
            actor=world.users["admin"], room=world.private_room, user_id=world.users["outsider"].pk
        )
    with pytest.raises(Conflict):
        rooms.room_member_add(
            actor=world.users["admin"], room=world.general, user_id=world.target.pk
        )
    rooms.room_member_add(
        actor=world.users["admin"], room=world.private_room, user_id=world.target.pk
    )
    assert RoomMember.objects.filter(room=world.private_room, user=world.target).exists()
    rooms.room_member_remove(
        actor=world.users["admin"], room=world.private_room, user_id=world.target.pk
    )
    assert not RoomMember.objects.filter(room=world.private_room, user=world.target).exists()


def test_community_update_and_delete_are_audited_and_the_entry_survives(world: World) -> None:
    community_services.community_update(
        actor=world.users["admin"], community=world.community, changes={"name": "Renamed"}
    )
    assert last_audit(world).action == "community.update"
    slug = world.community.slug
    community_services.community_delete(actor=world.users["owner"], community=world.community)
    assert not Community.objects.filter(slug=slug).exists()
    entry = AuditEntry.objects.get(community_slug=slug, action="community.delete")
    assert entry.community is None
    assert entry.actor == world.users["owner"]


def test_owner_grants_admin_and_an_admin_cannot(world: World) -> None:
    owner, admin = world.users["owner"], world.users["admin"]
    other = world.users["member"]
    with pytest.raises(Forbidden):
        members.member_set_role(
            actor=admin, community=world.community, user_id=other.pk, role="admin"
        )
    assert role_of(world, other) == "member"
    members.member_set_role(
        actor=owner, community=world.community, user_id=world.target.pk, role="admin"
    )
    assert role_of(world, world.target) == "admin"
    assert role_of(world, owner) == "owner"  # granting admin is no transfer
    entry = last_audit(world)
    assert (entry.actor, entry.action, entry.target, entry.detail) == (
        owner,
        "member.role",
        f"user:{world.target.pk}",
        {"from": "member", "to": "admin"},
    )


def test_join_request_deny_is_audited(private_world: World) -> None:
    world, applicant = private_world, UserFactory()
    request = members.community_join(actor=applicant, community=world.community)
    moderation.join_request_deny(
        actor=world.users["admin"], community=world.community, request_id=request.pk
    )
    entry = last_audit(world)
    assert (entry.actor, entry.action, entry.target) == (
        world.users["admin"],
        "joinrequest.deny",
        f"user:{applicant.pk}",
    )


def test_private_room_member_add_and_remove_are_audited(world: World) -> None:
    admin, room = world.users["admin"], world.private_room
    rooms.room_member_add(actor=admin, room=room, user_id=world.target.pk)
    entry = last_audit(world)
    assert (entry.actor, entry.action, entry.target, entry.detail) == (
        admin,
        "room.member_add",
        f"user:{world.target.pk}",
        {"room": room.pk},
    )
    rooms.room_member_add(actor=admin, room=room, user_id=world.target.pk)  # already in
    assert AuditEntry.objects.filter(action="room.member_add").count() == 1
    rooms.room_member_remove(actor=admin, room=room, user_id=world.target.pk)
    entry = last_audit(world)
    assert (entry.actor, entry.action, entry.target, entry.detail) == (
        admin,
        "room.member_remove",
        f"user:{world.target.pk}",
        {"room": room.pk},
    )
