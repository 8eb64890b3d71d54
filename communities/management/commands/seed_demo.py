"""Seed a demo community with a few users and rooms. Safe to run again: it adds what is
missing and changes nothing that exists."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from communities.models import Community, Membership, Room
from communities.services import communities as community_services
from communities.services import members, rooms
from communities.services.desk import desk_grant

PASSWORD = "sphere-demo-2026"  # noqa: S105 (the demo users, printed by make run)
USERS = [
    ("alice", "owner"),
    ("bob", "admin"),
    ("carol", "moderator"),
    ("dave", "member"),
    ("erin", "member"),
]
SLUG = "sphere-lounge"


class Command(BaseCommand):
    help = "Create the demo community 'sphere-lounge' and its users (idempotent)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--quiet", action="store_true", help="Print nothing")

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        users = {}
        for username, _ in USERS:
            user = User.objects.filter(username=username).first()
            if user is None:
                user = User.objects.create_user(username=username, password=PASSWORD)
            users[username] = user
        users["alice"].is_staff = users["alice"].is_superuser = True
        users["alice"].save(update_fields=["is_staff", "is_superuser"])
        desk_grant(user=users["carol"])  # carol moderates at the desk too

        owner = users["alice"]
        community = Community.objects.filter(slug=SLUG).first()
        if community is None:
            community = community_services.community_create(
                actor=owner,
                name="Sphere Lounge",
                slug=SLUG,
                description="A demo community: say hello in #general.",
            )
        for username, role in USERS[1:]:
            user = users[username]
            if not Membership.objects.filter(community=community, user=user).exists():
                members.community_join(actor=user, community=community)
                if role != "member":
                    members.member_set_role(
                        actor=owner, community=community, user_id=user.pk, role=role
                    )
        for name, topic, private in [
            ("random", "Anything goes", False),
            ("moderators", "Moderation team only", True),
        ]:
            room = Room.objects.filter(community=community, name=name).first()
            if room is None:
                room = rooms.room_create(
                    actor=owner, community=community, name=name, topic=topic, private=private
                )
            if private:
                rooms.room_member_add(actor=owner, room=room, user_id=users["carol"].pk)

        if not options["quiet"]:
            self.stdout.write(f"Demo community '{SLUG}' is ready. Users (password {PASSWORD}):")
            for username, role in USERS:
                self.stdout.write(f"  {username:<6} {role}")
            self.stdout.write(
                "alice is also a Django superuser; carol works the moderators' desk at the admin."
            )
