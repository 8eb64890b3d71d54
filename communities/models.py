"""Communities, their members and roles, rooms, invites, bans, join requests and the audit log.

Rows are written only by ``communities.services``; nothing here holds a business rule.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower

from communities.roles import ROLE_CHOICES, Role

User = settings.AUTH_USER_MODEL


def community_name_key(name: str) -> str:
    """What two community names are compared by (docs/api.md): NFKC, case-folded, without
    invisible format characters (names stored before they were refused), runs of whitespace as
    one space, trimmed."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    visible = "".join(ch for ch in folded if unicodedata.category(ch) != "Cf")
    return " ".join(visible.split())


class Community(models.Model):
    class Visibility(models.TextChoices):
        PUBLIC = "public"
        PRIVATE = "private"

    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=100)
    # ``community_name_key(name)``, kept by ``save``: names are unique by it.
    name_key = models.TextField(editable=False, default="")
    description = models.TextField(blank=True, default="", max_length=2000)
    visibility = models.CharField(
        max_length=7, choices=Visibility.choices, default=Visibility.PUBLIC
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "communities"
        ordering = ["slug"]
        constraints = [
            models.UniqueConstraint(Lower("slug"), name="community_slug_ci_unique"),
            models.UniqueConstraint(fields=["name_key"], name="community_name_key_unique"),
        ]

    def __str__(self) -> str:
        return self.slug

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.name_key = community_name_key(self.name)
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "name" in update_fields:
            kwargs["update_fields"] = {*update_fields, "name_key"}
        super().save(*args, **kwargs)


class Membership(models.Model):
    community = models.ForeignKey(Community, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=9, choices=ROLE_CHOICES, default=Role.MEMBER.value)
    joined_at = models.DateTimeField(auto_now_add=True)
    # A muted member reads but cannot post until this time (``muted_until``, docs/api.md).
    muted_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["joined_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["community", "user"], name="membership_unique"),
            models.UniqueConstraint(
                fields=["community"],
                condition=models.Q(role="owner"),
                name="membership_one_owner",
            ),
        ]
        indexes = [models.Index(fields=["user", "community"])]

    def __str__(self) -> str:
        return f"{self.user_id}@{self.community_id}:{self.role}"


class Room(models.Model):
    """A room of a community (``kind`` channel) or a direct message (``kind`` dm): a room with
    no community, read by its members only (docs/dms.md)."""

    class Kind(models.TextChoices):
        CHANNEL = "channel"
        DM = "dm"

    community = models.ForeignKey(
        Community, on_delete=models.CASCADE, related_name="rooms", null=True, blank=True
    )
    kind = models.CharField(max_length=7, choices=Kind.choices, default=Kind.CHANNEL)
    # A DM's exact member set, its sorted user ids joined by commas: unique, so that two
    # racing creates of the same set find one room. None for a channel, and for a group DM
    # whose members, after one left, are the set of another DM (found by its id alone).
    dm_key = models.CharField(max_length=255, null=True, blank=True, unique=True, editable=False)
    name = models.CharField(max_length=64)
    topic = models.CharField(max_length=500, blank=True, default="")
    private = models.BooleanField(default=False)
    slow_mode_s = models.PositiveIntegerField(default=0)
    # The room's latest event seq; incremented under the row lock with each room event.
    head_seq = models.BigIntegerField(default=0)
    # Raised under the row lock by every change of who reads the room, so that the fan-out
    # tier can tell a room event committed after a change from one before it, whatever order
    # they are published in (see communities/events.py).
    access_version = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["community_id", "name"]
        constraints = [
            models.UniqueConstraint(Lower("name"), "community", name="room_name_unique"),
            # A DM has no community and is private (read by its members); a channel has one.
            models.CheckConstraint(
                condition=(
                    models.Q(kind="dm", community__isnull=True, private=True)
                    | models.Q(kind="channel", community__isnull=False, dm_key__isnull=True)
                ),
                name="room_kind_shape",
            ),
        ]

    def __str__(self) -> str:
        if self.community_id is None:
            return f"dm {self.pk}"
        return f"{self.community_id}#{self.name}"

    @property
    def is_dm(self) -> bool:
        return self.community_id is None


class RoomMember(models.Model):
    """Membership of a private room or a DM (public rooms are read by every community
    member)."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="room_members")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="room_memberships")
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["room", "user"], name="room_member_unique"),
        ]
        indexes = [models.Index(fields=["user", "room"])]

    def __str__(self) -> str:
        return f"{self.user_id} in room {self.room_id}"


class Invite(models.Model):
    community = models.ForeignKey(Community, on_delete=models.CASCADE, related_name="invites")
    code = models.CharField(max_length=32, unique=True)
    created_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, related_name="+")
    max_uses = models.PositiveIntegerField(null=True, blank=True)
    uses = models.PositiveIntegerField(default=0)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.code


class JoinRequest(models.Model):
    community = models.ForeignKey(Community, on_delete=models.CASCADE, related_name="join_requests")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="join_requests")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["community", "user"], name="join_request_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} asks to join {self.community_id}"


class Ban(models.Model):
    community = models.ForeignKey(Community, on_delete=models.CASCADE, related_name="bans")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="bans")
    reason = models.CharField(max_length=500, blank=True, default="")
    by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["community", "user"], name="ban_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} banned from {self.community_id}"


class AuditEntry(models.Model):
    """One moderation or administration act. Written once, never changed.

    ``community`` survives the community's deletion as ``community_slug``.
    """

    community = models.ForeignKey(
        Community, on_delete=models.SET_NULL, null=True, related_name="audit_entries"
    )
    community_slug = models.SlugField(max_length=50)
    actor = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, related_name="+")
    action = models.CharField(max_length=40)
    target = models.CharField(max_length=100, blank=True, default="")
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "audit entries"
        indexes = [models.Index(fields=["community", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.community_slug} {self.action} {self.target}"


class Profile(models.Model):
    """A user's settings beyond Django's user: who may start a DM with them (docs/dms.md).
    A user without a row has the defaults."""

    class DmPolicy(models.TextChoices):
        ANYONE = "anyone"
        COMMUNITIES = "communities"
        NONE = "none"

    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="sphere_profile")
    dm_policy = models.CharField(
        max_length=11, choices=DmPolicy.choices, default=DmPolicy.COMMUNITIES
    )

    def __str__(self) -> str:
        return f"profile of {self.user_id}"


class WsTicket(models.Model):
    """A single-use credential for the WebSocket handshake; only its digest is stored."""

    digest = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    expires_at = models.DateTimeField(db_index=True)
    used_at = models.DateTimeField(null=True, blank=True)
    # The credential the ticket was issued with, as a non-secret reference (the digest of an
    # API token; empty for a session): revoking the token closes the sockets it opened.
    credential = models.CharField(max_length=64, blank=True, default="")

    def __str__(self) -> str:
        return f"ticket of {self.user_id}"
