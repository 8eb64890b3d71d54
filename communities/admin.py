"""The moderators' desk: communities, members, rooms and their moderation records.

Every change here has rules (ranks, one owner, audit entries, live effects), so the admin never
writes a row itself: its forms and actions call the same services as the REST API, as the
signed-in staff user, whose role in the community decides what they may do. A staff user who
is not a superuser sees only the communities they moderate (and of those, the rooms they can
read). Lists load their related rows in the same query (no query per row).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, cast

from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

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
from communities.selectors import moderated_community_ids, readable_rooms_filter
from communities.services import members as member_services
from communities.services import moderation as moderation_services
from communities.services import rooms as room_services
from sphere.errors import ApplicationError

EXCERPT = 80


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
    read out of sight."""

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


@admin.register(Community)
class CommunityAdmin(DeskAdmin):
    community_path = "pk"
    date_hierarchy = "created_at"
    list_display = ["slug", "name", "visibility", "members", "created_at"]
    list_filter = ["visibility", "created_at"]
    search_fields = ["slug", "name", "description"]
    readonly_fields = ["slug", "name", "description", "visibility", "created_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).annotate(member_total=Count("memberships"))

    @admin.display(ordering="member_total")
    def members(self, community: Any) -> Any:
        url = reverse("admin:communities_membership_changelist")
        return format_html(
            '<a href="{}?community__id__exact={}">{}</a>', url, community.pk, community.member_total
        )


class MuteActions:
    """Membership actions: mute for a while, or lift a mute (rank rule and audit in the
    services)."""

    def _mute(self, request: HttpRequest, queryset: QuerySet[Any], minutes: int) -> None:
        done = 0
        for membership in queryset.select_related("community", "user"):
            done += run_service(
                self,  # type: ignore[arg-type]
                request,
                partial(
                    member_services.member_mute,
                    actor=staff(request),
                    community=membership.community,
                    user_id=membership.user_id,
                    minutes=minutes,
                ),
                f"Muting {membership.user.username}",
            )
        if done:
            self.message_user(request, f"Muted {done} member(s) for {minutes} minutes.")  # type: ignore[attr-defined]

    @admin.action(description="Mute for 1 hour", permissions=["change"])
    def mute_1h(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self._mute(request, queryset, 60)

    @admin.action(description="Mute for 24 hours", permissions=["change"])
    def mute_24h(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self._mute(request, queryset, 24 * 60)

    @admin.action(description="Lift the mute", permissions=["change"])
    def unmute(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for membership in queryset.select_related("community", "user"):
            run_service(
                self,  # type: ignore[arg-type]
                request,
                partial(
                    member_services.member_unmute,
                    actor=staff(request),
                    community=membership.community,
                    user_id=membership.user_id,
                ),
                f"Unmuting {membership.user.username}",
            )


@admin.register(Membership)
class MembershipAdmin(MuteActions, DeskAdmin):
    list_display = ["user_name", "community_link", "role", "joined_at", "muted_until"]
    list_filter = ["role", ("community", admin.RelatedOnlyFieldListFilter), "joined_at"]
    list_select_related = ["user", "community"]
    search_fields = ["user__username", "community__slug"]
    readonly_fields = ["user_name", "community_link", "role", "joined_at"]
    fields = ["user_name", "community_link", "role", "joined_at", "muted_until"]
    actions = ["mute_1h", "mute_24h", "unmute"]

    @admin.display(description="user", ordering="user__username")
    def user_name(self, membership: Membership) -> Any:
        return user_link(membership.user)

    @admin.display(description="community", ordering="community__slug")
    def community_link(self, membership: Membership) -> Any:
        return link(membership.community)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return admin.ModelAdmin.has_change_permission(self, request, obj)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        """``muted_until`` is the one field to change: a mute until then (rounded up to the
        minute), or none."""
        if "muted_until" not in form.changed_data:
            return
        until = obj.muted_until
        act: Callable[[], Any]
        if until is None or until <= timezone.now():
            act = partial(
                member_services.member_unmute,
                actor=staff(request),
                community=obj.community,
                user_id=obj.user_id,
            )
        else:
            minutes = max(1, -(-int((until - timezone.now()).total_seconds()) // 60))
            act = partial(
                member_services.member_mute,
                actor=staff(request),
                community=obj.community,
                user_id=obj.user_id,
                minutes=minutes,
            )
        run_service(self, request, act, "Changing the mute")


@admin.register(Room)
class RoomAdmin(DeskAdmin):
    list_display = ["name", "community_link", "private", "slow_mode_s", "head_seq", "created_at"]
    list_filter = ["private", ("community", admin.RelatedOnlyFieldListFilter), "created_at"]
    list_select_related = ["community"]
    search_fields = ["name", "topic", "community__slug"]
    fields = ["name", "community_link", "topic", "private", "slow_mode_s", "head_seq"]
    readonly_fields = ["name", "community_link", "topic", "private", "head_seq"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        qs = super().get_queryset(request)
        user: Any = request.user
        if user.is_superuser:
            return qs
        # By id: the readability filter joins private-room members (one row per member).
        return qs.filter(pk__in=Room.objects.filter(readable_rooms_filter(user)).values("pk"))

    @admin.display(description="community", ordering="community__slug")
    def community_link(self, room: Room) -> Any:
        return link(room.community)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return admin.ModelAdmin.has_change_permission(self, request, obj)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        """Slow mode is the one field to change here (moderators and up, audited, live)."""
        if "slow_mode_s" in form.changed_data:
            run_service(
                self,
                request,
                lambda: room_services.room_update(
                    actor=staff(request), room=obj, changes={"slow_mode_s": obj.slow_mode_s}
                ),
                "Changing slow mode",
            )


@admin.register(RoomMember)
class RoomMemberAdmin(DeskAdmin):
    community_path = "room__community"
    room_path = "room"
    list_display = ["user", "room", "added_at"]
    list_filter = [("room__community", admin.RelatedOnlyFieldListFilter), "added_at"]
    list_select_related = ["user", "room"]
    search_fields = ["user__username", "room__name"]


@admin.register(Ban)
class BanAdmin(DeskAdmin):
    list_display = ["user_name", "community_link", "reason_excerpt", "by_name", "created_at"]
    list_filter = [("community", admin.RelatedOnlyFieldListFilter), "created_at"]
    list_select_related = ["user", "community", "by"]
    search_fields = ["user__username", "community__slug", "reason"]
    actions = ["lift"]

    @admin.display(description="user", ordering="user__username")
    def user_name(self, ban: Ban) -> Any:
        return user_link(ban.user)

    @admin.display(description="by", ordering="by__username")
    def by_name(self, ban: Ban) -> Any:
        return user_link(ban.by)

    @admin.display(description="community", ordering="community__slug")
    def community_link(self, ban: Ban) -> Any:
        return link(ban.community)

    @admin.display(description="reason")
    def reason_excerpt(self, ban: Ban) -> str:
        return excerpt(ban.reason)

    def has_lift_permission(self, request: HttpRequest) -> bool:
        """Lifting a ban (through its service) is what ``delete_ban`` allows at the desk; the
        row itself is never deleted directly (no delete page)."""
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.delete_{opts.model_name}")

    @admin.action(description="Lift the ban", permissions=["lift"])
    def lift(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for ban in queryset.select_related("community", "user"):
            run_service(
                self,
                request,
                partial(
                    moderation_services.ban_lift,
                    actor=staff(request),
                    community=ban.community,
                    user_id=ban.user_id,
                ),
                f"Lifting the ban of {ban.user.username}",
            )


@admin.register(Invite)
class InviteAdmin(DeskAdmin):
    list_display = ["code", "community", "uses", "max_uses", "expires_at", "revoked_at"]
    list_filter = [("community", admin.RelatedOnlyFieldListFilter), "expires_at"]
    list_select_related = ["community"]
    search_fields = ["code", "community__slug"]


@admin.register(JoinRequest)
class JoinRequestAdmin(DeskAdmin):
    list_display = ["user", "community", "created_at"]
    list_filter = [("community", admin.RelatedOnlyFieldListFilter), "created_at"]
    list_select_related = ["user", "community"]
    search_fields = ["user__username", "community__slug"]


@admin.register(AuditEntry)
class AuditEntryAdmin(DeskAdmin):
    """The audit log: read-only for everyone, superusers included (history does not change)."""

    date_hierarchy = "created_at"
    list_display = ["created_at", "community_slug", "actor", "action", "target", "detail"]
    list_filter = [
        "action",
        ("community", admin.RelatedOnlyFieldListFilter),
        ("actor", admin.RelatedOnlyFieldListFilter),
        "created_at",
    ]
    list_select_related = ["actor"]
    search_fields = ["actor__username", "community_slug", "action", "target"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        qs = admin.ModelAdmin.get_queryset(self, request)
        user: Any = request.user
        if user.is_superuser:
            return qs
        # Entries outlive their community (kept under its slug): scope by the live ones.
        return qs.filter(community__in=moderated_community_ids(user=user))
