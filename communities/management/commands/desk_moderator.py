"""``python manage.py desk_moderator USERNAME``: let an account work the moderators' desk
(staff, in the Moderators group). What it may do in a community still follows its role there.
``--remove`` takes the desk away again."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandError, CommandParser

from communities.services.desk import MODERATORS, desk_grant


class Command(BaseCommand):
    help = "Give an account the moderators' desk in the admin (or take it away)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--remove", action="store_true", help="take the desk away")

    def handle(self, *args: Any, **options: Any) -> None:
        user = User.objects.filter(username__iexact=options["username"]).first()
        if user is None:
            raise CommandError(f"No account named {options['username']!r}.")
        if options["remove"]:
            user.groups.remove(*Group.objects.filter(name=MODERATORS))
            if not user.is_superuser and not user.groups.exists():
                user.is_staff = False
                user.save(update_fields=["is_staff"])
            self.stdout.write(f"{user.username} no longer works the desk.")
            return
        desk_grant(user=user)
        self.stdout.write(f"{user.username} works the moderators' desk now.")
