"""The moderators' desk: the ``Moderators`` group and its permissions.

A staff account in the group may see the desk's lists (scoped to the communities it
moderates), resolve reports, delete messages, mute and unmute, lift bans, set slow mode and
keep the automod terms; nothing else (invites and join requests are the admins', as in the
API: superusers see them at the desk). What an act is allowed to do to whom is still decided by
the services, from the account's role in the community.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, Permission, User

MODERATORS = "Moderators"

# (app label, codename)
DESK_PERMISSIONS = [
    ("communities", "view_community"),
    ("communities", "view_membership"),
    ("communities", "change_membership"),  # mute, unmute
    ("communities", "view_room"),
    ("communities", "change_room"),  # slow mode
    ("communities", "view_roommember"),
    ("communities", "view_ban"),
    ("communities", "delete_ban"),  # lift a ban
    ("communities", "view_auditentry"),
    ("chat", "view_message"),
    ("chat", "change_message"),  # delete (the message keeps its place, empty)
    ("chat", "view_report"),
    ("chat", "change_report"),  # resolve
    ("chat", "view_blockedterm"),
    ("chat", "add_blockedterm"),
    ("chat", "change_blockedterm"),
    ("chat", "delete_blockedterm"),
    ("chat", "view_roomevent"),  # tracing a delivery
    ("chat", "view_reaction"),
    ("chat", "view_readmarker"),
]


def moderators_group_sync(**signal: Any) -> Group | None:
    """Create the group or set its permissions to exactly the desk's; None until every one of
    them exists (the apps' permissions appear as their migrations finish). Idempotent: run
    after every ``migrate``."""
    wanted = {f"{app}.{code}" for app, code in DESK_PERMISSIONS}
    found = list(
        Permission.objects.filter(
            content_type__app_label__in={app for app, _ in DESK_PERMISSIONS},
            codename__in={code for _, code in DESK_PERMISSIONS},
        ).select_related("content_type")
    )
    permissions = [p for p in found if f"{p.content_type.app_label}.{p.codename}" in wanted]
    if len(permissions) != len(wanted):
        return None
    group, _ = Group.objects.get_or_create(name=MODERATORS)
    group.permissions.set(permissions)
    return group


def desk_grant(*, user: User) -> None:
    """Make ``user`` a desk moderator: staff, in the Moderators group (not a superuser)."""
    group = moderators_group_sync()
    if group is None:
        raise RuntimeError("the desk's permissions do not exist yet: run migrate first")
    if not user.is_staff:
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    user.groups.add(group)
