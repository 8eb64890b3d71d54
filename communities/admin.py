"""The moderators' desk: communities, members, rooms and their moderation records.

Pages start from ``sphere.desk.DeskAdmin``: read-only and scoped to what the signed-in staff
user moderates; the few changes (mutes, slow mode, lifting a ban) go through the services, as
that user (docs/moderation.md).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.forms import UserChangeForm
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
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
from sphere.desk import (
    DeskAdmin,
    counted,
    duration,
    excerpt,
    link,
    run_service,
    staff,
    user_link,
)


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
        done: list[str] = []
        for membership in queryset.select_related("community", "user"):
            if run_service(
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
            ):
                done.append(membership.user.username)
        if done:
            whom = counted(len(done), done[0], "members")
            self.message_user(request, f"Muted {whom} for {duration(minutes)}.")  # type: ignore[attr-defined]

    @admin.action(description="Mute for 1 hour", permissions=["change"])
    def mute_1h(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self._mute(request, queryset, 60)

    @admin.action(description="Mute for 24 hours", permissions=["change"])
    def mute_24h(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self._mute(request, queryset, 24 * 60)

    @admin.action(description="Lift the mute", permissions=["change"])
    def unmute(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        done: list[str] = []
        for membership in queryset.select_related("community", "user"):
            if run_service(
                self,  # type: ignore[arg-type]
                request,
                partial(
                    member_services.member_unmute,
                    actor=staff(request),
                    community=membership.community,
                    user_id=membership.user_id,
                ),
                f"Unmuting {membership.user.username}",
            ):
                done.append(membership.user.username)
        if done:
            whom = counted(len(done), done[0], "members")
            self.message_user(request, f"Lifted the mute of {whom}.")  # type: ignore[attr-defined]


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
        done: list[str] = []
        for ban in queryset.select_related("community", "user"):
            if run_service(
                self,
                request,
                partial(
                    moderation_services.ban_lift,
                    actor=staff(request),
                    community=ban.community,
                    user_id=ban.user_id,
                ),
                f"Lifting the ban of {ban.user.username}",
            ):
                done.append(ban.user.username)
        if done:
            whom = counted(len(done), done[0], "members")
            self.message_user(request, f"Lifted the ban of {whom}.")


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


class UsernameChangeForm(UserChangeForm):
    """Django's form compares usernames exactly; Sphere's are unique regardless of case
    (docs/api.md), so renaming onto another user's name in another case is a form error."""

    def clean_username(self) -> str:
        username: str = self.cleaned_data["username"]
        if User.objects.filter(username__iexact=username).exclude(pk=self.instance.pk).exists():
            raise ValidationError("A user with that username already exists (in another case).")
        return username


if admin.site.is_registered(User):
    admin.site.unregister(User)


@admin.register(User)
class SphereUserAdmin(UserAdmin):
    form = UsernameChangeForm
