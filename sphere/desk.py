"""The frame of the moderators' desk (the Django admin), shared by the apps' admin modules.

Every change at the desk has rules (ranks, one owner, audit entries, live effects), so the admin
never writes a row itself: its forms and actions call the same services as the REST API, as the
signed-in staff user, whose role in the community decides what they may do (docs/moderation.md).
A staff user who is not a superuser sees only the communities they moderate (and of those, the
rooms they can read).

Here: the desk's titles ("Sphere", not Django's), ``staff`` (the services' actor), ``link``,
``user_link`` and ``excerpt`` (how the desk shows rows), ``counted`` and ``duration`` (how its
messages word numbers and times), ``run_service`` (a service's refusal as an error message) and
``DeskAdmin``, the read-only, scoped ModelAdmin every desk page starts from.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, cast

from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timeuntil

from communities.models import Room
from communities.selectors import moderated_community_ids, readable_rooms_filter
from sphere.errors import ApplicationError

EXCERPT = 80

# The desk speaks as Sphere: page titles, the header and the index (docs/moderation.md).
admin.site.site_header = "Sphere"
admin.site.site_title = "Sphere"
admin.site.index_title = "The moderators' desk"


def staff(request: HttpRequest) -> User:
    """The signed-in staff user (the admin lets no one else in): the services' actor."""
    return cast(User, request.user)


def link(obj: Any, text: Any = None) -> Any:
    """A link to the object's page in the desk (its text: ``str(obj)`` or ``text``)."""
    if obj is None:
        return "-"
    meta = obj._meta
    url = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, obj if text is None else text)


def user_link(user: Any) -> Any:
    """A user as the desk shows one: the username, linking to their memberships (the desk
    gives moderators no access to accounts themselves)."""
    if user is None:
        return "-"
    url = reverse("admin:communities_membership_changelist")
    return format_html('<a href="{}?user__id__exact={}">{}</a>', url, user.pk, user.username)


def excerpt(text: str) -> str:
    return text if len(text) <= EXCERPT else text[: EXCERPT - 1] + "…"


def counted(count: int, one: str, many: str) -> str:
    """``one`` for a single row, else ``many`` with the count: "the report", "3 reports"."""
    return one if count == 1 else f"{count} {many}"


def duration(minutes: int) -> str:
    """A mute's length for people: "1 hour", "1 day, 12 hours", "1 week"."""
    now = timezone.now()
    return timeuntil(now + timedelta(minutes=minutes), now).replace("\xa0", " ")


def run_service(
    modeladmin: admin.ModelAdmin, request: HttpRequest, act: Callable[[], Any], done: str
) -> bool:
    """Call a service for the desk: its refusal becomes an error message, not a 500, and the
    page then claims no success (see ``DeskAdmin.message_user``)."""
    try:
        act()
    except ApplicationError as exc:
        request.desk_refused = True  # type: ignore[attr-defined]
        modeladmin.message_user(request, f"{done}: refused. {exc.message}", messages.ERROR)
        return False
    return True


class DeskAdmin(admin.ModelAdmin):
    """Read-only unless a subclass routes a change through a service. ``community_path`` is
    the lookup from the model to its Community, for scoping to what the user moderates;
    ``room_path`` (where the model belongs to a room) also keeps private rooms the user cannot
    read out of sight. Lists load their related rows in the same query (no query per row)."""

    community_path = "community"
    room_path: str | None = None
    list_per_page = 50

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        qs = super().get_queryset(request)
        user: Any = request.user
        if user.is_superuser:
            return qs
        qs = qs.filter(**{f"{self.community_path}__in": moderated_community_ids(user=user)})
        if self.room_path is not None:
            readable = Room.objects.filter(readable_rooms_filter(user)).values("pk")
            qs = qs.filter(**{f"{self.room_path}__in": readable})
        return qs

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_actions(self, request: HttpRequest) -> Any:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # rows leave through services, never directly
        return actions

    def message_user(self, request: HttpRequest, message: Any, level: int | str = messages.INFO,
                     *args: Any, **kwargs: Any) -> None:  # fmt: skip
        """Django's own "changed successfully" does not follow a change a service refused."""
        if getattr(request, "desk_refused", False) and level == messages.SUCCESS:
            return
        super().message_user(request, message, level, *args, **kwargs)

    def log_change(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        if getattr(request, "desk_refused", False):
            return None
        return super().log_change(request, obj, message)

    def log_addition(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        if getattr(request, "desk_refused", False):
            return None
        return super().log_addition(request, obj, message)

    def log_deletion(self, request: HttpRequest, obj: Any, object_repr: str) -> Any:
        if getattr(request, "desk_refused", False):
            return None
        return super().log_deletion(request, obj, object_repr)
