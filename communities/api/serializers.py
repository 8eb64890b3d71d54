"""Wire shapes of the objects in docs/api.md; strict input serializers (unknown fields refused)."""

from __future__ import annotations

import re
from typing import Any

from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from communities.models import (
    AuditEntry,
    Ban,
    Community,
    Invite,
    JoinRequest,
    Membership,
    Profile,
    Room,
)
from communities.roles import ROLE_CHOICES
from communities.selectors import INVITE_REASONS


# Input serializers refuse fields they do not know and a body that is not an object. (A
# comment, not a docstring: the schema would show a docstring on every request body.)
class StrictSerializer(serializers.Serializer):
    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": ["Expected a JSON object."]})
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


# --- Output ------------------------------------------------------------------------------------


class UserSerializer(serializers.ModelSerializer):
    class Meta:
        model = get_user_model()
        fields = ["id", "username"]


class CommunitySerializer(serializers.ModelSerializer):
    member_count = serializers.SerializerMethodField()
    my_role = serializers.SerializerMethodField()

    class Meta:
        model = Community
        fields = [
            "slug",
            "name",
            "description",
            "visibility",
            "member_count",
            "my_role",
            "created_at",
        ]

    def get_member_count(self, obj: Community) -> int:
        count = getattr(obj, "member_count", None)
        return count if count is not None else obj.memberships.count()

    @extend_schema_field(serializers.ChoiceField(choices=ROLE_CHOICES, allow_null=True))
    def get_my_role(self, obj: Community) -> str | None:
        return getattr(obj, "my_role", None)


class RoomSerializer(serializers.ModelSerializer):
    community: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="slug", read_only=True, allow_null=True
    )
    unread = serializers.SerializerMethodField()
    members = serializers.SerializerMethodField()

    class Meta:
        model = Room
        fields = [
            "id",
            "kind",
            "community",
            "members",
            "name",
            "topic",
            "private",
            "slow_mode_s",
            "head_seq",
            "unread",
            "created_at",
        ]

    def get_unread(self, obj: Room) -> int:
        # Messages by others after the caller's read marker; annotated by the selector that
        # knows the caller, 0 where no message exists yet.
        return int(getattr(obj, "unread", 0) or 0)

    @extend_schema_field(UserSerializer(many=True, allow_null=True))
    def get_members(self, obj: Room) -> list[dict[str, Any]] | None:
        """A DM's members, the caller included (``rooms_readable`` prefetches them); null for
        a channel."""
        if obj.community_id is not None:
            return None
        members = sorted(obj.room_members.all(), key=lambda m: m.user_id)
        return [{"id": m.user_id, "username": m.user.username} for m in members]


class MemberSerializer(serializers.ModelSerializer):
    user = UserSerializer(read_only=True)

    class Meta:
        model = Membership
        fields = ["user", "role", "joined_at", "muted_until"]


class BanSerializer(serializers.ModelSerializer):
    user = UserSerializer(read_only=True)
    by = UserSerializer(read_only=True, allow_null=True)

    class Meta:
        model = Ban
        fields = ["user", "reason", "by", "created_at"]


class InviteSerializer(serializers.ModelSerializer):
    class Meta:
        model = Invite
        fields = ["code", "max_uses", "uses", "expires_at"]


class InviteAcceptSerializer(MemberSerializer):
    community: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="slug", read_only=True, help_text="The slug of the community joined."
    )

    class Meta(MemberSerializer.Meta):
        fields = [*MemberSerializer.Meta.fields, "community"]


class InvitePreviewSerializer(serializers.Serializer):
    code = serializers.CharField()
    community = CommunitySerializer()
    expires_at = serializers.DateTimeField(allow_null=True)
    valid = serializers.BooleanField(
        help_text="The code can still be used and the caller is not banned."
    )
    reason = serializers.ChoiceField(
        choices=INVITE_REASONS,
        allow_null=True,
        help_text="Why the invite is not valid; null when it is.",
    )


class JoinRequestSerializer(serializers.ModelSerializer):
    user = UserSerializer(read_only=True)

    class Meta:
        model = JoinRequest
        fields = ["id", "user", "created_at"]


class AuditEntrySerializer(serializers.ModelSerializer):
    actor = UserSerializer(read_only=True, allow_null=True)

    class Meta:
        model = AuditEntry
        fields = ["id", "actor", "action", "target", "detail", "created_at"]


# --- Input -------------------------------------------------------------------------------------


class CredentialsIn(StrictSerializer):
    username = serializers.CharField(max_length=150, trim_whitespace=False)
    password = serializers.CharField(max_length=128, trim_whitespace=False)


_USERNAME_RULE = "3 to 32 characters of letters, digits and underscore."


class RegisterIn(CredentialsIn):
    # The service's rule (accounts.USERNAME_RE) and message, checked here too for the schema.
    username = serializers.RegexField(
        r"^[A-Za-z0-9_]{3,32}$",
        min_length=3,
        max_length=32,
        trim_whitespace=False,
        help_text="3 to 32 of letters, digits and underscore; unique regardless of case.",
        error_messages={
            key: _USERNAME_RULE for key in ("invalid", "blank", "min_length", "max_length")
        },
    )

    def validate_username(self, value: str) -> str:
        # ``$`` in the pattern also matches before a final newline; the whole value must fit.
        if not re.fullmatch(r"[A-Za-z0-9_]{3,32}", value):
            raise serializers.ValidationError(_USERNAME_RULE)
        return value


class CommunityCreateIn(StrictSerializer):
    name = serializers.CharField(max_length=100)
    slug = serializers.SlugField(max_length=50, required=False)
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True)
    visibility = serializers.ChoiceField(choices=Community.Visibility.choices, required=False)


class CommunityUpdateIn(StrictSerializer):
    name = serializers.CharField(max_length=100, required=False)
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True)
    visibility = serializers.ChoiceField(choices=Community.Visibility.choices, required=False)


class RoleIn(StrictSerializer):
    role = serializers.ChoiceField(choices=ROLE_CHOICES)


class MuteIn(StrictSerializer):
    minutes = serializers.IntegerField(min_value=1, max_value=28 * 24 * 60)


class BanIn(StrictSerializer):
    user_id = serializers.IntegerField(min_value=1, max_value=2**53)
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True)


class InviteIn(StrictSerializer):
    max_uses = serializers.IntegerField(
        min_value=1, max_value=100_000, required=False, allow_null=True
    )
    expires_in_s = serializers.IntegerField(
        min_value=60, max_value=365 * 24 * 3600, required=False, allow_null=True
    )


class RoomCreateIn(StrictSerializer):
    name = serializers.CharField(max_length=64)
    topic = serializers.CharField(max_length=500, required=False, allow_blank=True)
    private = serializers.BooleanField(required=False)
    slow_mode_s = serializers.IntegerField(min_value=0, max_value=6 * 3600, required=False)


class RoomUpdateIn(StrictSerializer):
    name = serializers.CharField(max_length=64, required=False)
    topic = serializers.CharField(max_length=500, required=False, allow_blank=True)
    private = serializers.BooleanField(required=False)
    slow_mode_s = serializers.IntegerField(min_value=0, max_value=6 * 3600, required=False)


class UserIdIn(StrictSerializer):
    user_id = serializers.IntegerField(min_value=1, max_value=2**53)


class DmCreateIn(StrictSerializer):
    user_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=2**53),
        min_length=1,
        max_length=100,
        help_text="1 to 9 other users; the caller's own id and repeats are ignored.",
    )


class MeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    dm_policy = serializers.ChoiceField(
        choices=Profile.DmPolicy.choices,
        help_text="Who may start a DM with the caller: `anyone`, `communities` (those sharing a "
        "community; the default) or `none`.",
    )


class MeUpdateIn(StrictSerializer):
    dm_policy = serializers.ChoiceField(choices=Profile.DmPolicy.choices, required=False)


# --- Composite answers -------------------------------------------------------------------------


class RegisterOut(serializers.Serializer):
    user = UserSerializer()
    token = serializers.CharField()


class TokenOut(serializers.Serializer):
    token = serializers.CharField()


class LoginOut(serializers.Serializer):
    user = UserSerializer()


class TicketOut(serializers.Serializer):
    ticket = serializers.CharField()
    expires_in = serializers.IntegerField()
