"""Wire shapes of the chat endpoints, and their strict input serializers.

Messages are rendered by ``chat.wire.message_dict``, the one builder shared with the socket
frames; the output serializers here describe that shape to the schema and delegate to it.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.fields import empty

from chat.models import Message, Report
from chat.wire import message_dict
from communities.api.serializers import StrictSerializer, UserSerializer

# The protocol's bounds (chat.protocol): ids and seqs fit a signed 64-bit column with room to
# spare, and a body is checked for 1..4,000 characters after trimming by the service.
MAX_ID = 2**62
MAX_RAW_BODY = 16_000
BODY_HELP = "1 to 4,000 characters after trimming leading and trailing whitespace."

# --- Output ------------------------------------------------------------------------------------


class ReactionSummarySerializer(serializers.Serializer):
    emoji = serializers.CharField()
    count = serializers.IntegerField()
    me = serializers.BooleanField(help_text="Whether the caller is among those who reacted.")


class ThreadSummarySerializer(serializers.Serializer):
    reply_count = serializers.IntegerField()
    last_reply_at = serializers.DateTimeField()
    participants = serializers.ListField(
        child=serializers.IntegerField(), help_text="The repliers' ids, first reply first."
    )


class MessageSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    room = serializers.IntegerField()
    seq = serializers.IntegerField(help_text="The seq of the message's `message.new` event.")
    event_seq = serializers.IntegerField(
        help_text="The seq of the last room event that changed the message (its `message.new`, "
        "an edit, its deletion, a reaction). A client holding this version applies an event to "
        "the message only when the event's seq is higher."
    )
    author = UserSerializer()
    body = serializers.CharField(help_text="Empty for a deleted message.")
    reply_to = serializers.IntegerField(allow_null=True)
    thread_root = serializers.IntegerField(
        allow_null=True, help_text="The root of the thread this message replies in; null."
    )
    thread = ThreadSummarySerializer(
        allow_null=True, help_text="On a root: its thread's summary; null while it has no reply."
    )
    mentions = serializers.ListField(
        child=serializers.IntegerField(),
        help_text="Ids of the users named as @username who can read the room.",
    )
    reactions = ReactionSummarySerializer(many=True)
    created_at = serializers.DateTimeField()
    edited_at = serializers.DateTimeField(allow_null=True)
    deleted = serializers.BooleanField()

    def to_representation(self, instance: Message) -> dict[str, Any]:
        # ``me`` in reactions is relative to the caller: the view's request, or ``viewer_id``.
        viewer_id = self.context.get("viewer_id")
        request = self.context.get("request")
        if viewer_id is None and request is not None:
            viewer_id = request.user.pk
        return message_dict(instance, viewer_id=viewer_id)


class HistorySerializer(serializers.Serializer):
    results = MessageSerializer(many=True)
    has_more = serializers.BooleanField(
        help_text="More messages exist beyond this page in the direction asked: older without "
        "a cursor or with `before_seq`, newer with `after_seq`."
    )


class ReportSerializer(serializers.ModelSerializer):
    message = MessageSerializer(read_only=True)
    reporter = UserSerializer(
        read_only=True, allow_null=True, help_text="Null for a report opened by automod."
    )

    class Meta:
        model = Report
        fields = ["id", "message", "reporter", "reason", "status", "resolution", "created_at"]
        read_only_fields = fields


class ReadStateSerializer(serializers.Serializer):
    room = serializers.IntegerField()
    seq = serializers.IntegerField(
        help_text="The caller's read marker after the call: the last seq read in the room."
    )


class PresenceSerializer(serializers.Serializer):
    online = serializers.ListField(
        child=serializers.IntegerField(), help_text="Ids of the room's readers online now."
    )


# --- Input -------------------------------------------------------------------------------------


# The service trims a body, then measures it (after the idempotency check), so the serializer
# takes any string up to MAX_RAW_BODY, blank included; the schema states the rule a client
# must follow (a repeated client_msg_id answers whatever the body).
@extend_schema_field({"type": "string", "minLength": 1, "maxLength": 4000, "pattern": r"\S"})
class _BodyField(serializers.CharField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(allow_blank=False, trim_whitespace=False, **kwargs)

    def run_validation(self, data: Any = empty) -> Any:
        if data == "":
            return data
        return super().run_validation(data)


class MessageCreateIn(StrictSerializer):
    # The body is trimmed and measured by the service, after the idempotency check: a repeated
    # client_msg_id answers the original message whatever the body says now.
    body = _BodyField(max_length=MAX_RAW_BODY, help_text=BODY_HELP)
    client_msg_id = serializers.CharField(
        min_length=1,
        max_length=64,
        trim_whitespace=False,
        help_text="The client's id of this send (1 to 64 characters, no control or invisible "
        "format characters); the same id again answers the same message.",
    )
    reply_to = serializers.IntegerField(
        min_value=1,
        max_value=MAX_ID,
        required=False,
        allow_null=True,
        help_text="The id of a message of the same room.",
    )
    thread_root = serializers.IntegerField(
        min_value=1,
        max_value=MAX_ID,
        required=False,
        allow_null=True,
        help_text="Post as a reply in the thread of this top-level message of the same room.",
    )


class MessageEditIn(StrictSerializer):
    body = _BodyField(max_length=MAX_RAW_BODY, help_text=BODY_HELP)


class ReportIn(StrictSerializer):
    reason = serializers.CharField(max_length=1000, help_text="1 to 1,000 characters.")


class ReadIn(StrictSerializer):
    seq = serializers.IntegerField(
        min_value=0,
        max_value=MAX_ID,
        help_text="The last seq the caller has read; the marker moves forward only and stops "
        "at the room's head.",
    )


# Query strings: unknown parameters are ignored as usual for a query; the known ones are typed.


class HistoryQuery(serializers.Serializer):
    after_seq = serializers.IntegerField(
        min_value=0, max_value=MAX_ID, required=False, help_text="The messages just after it."
    )
    before_seq = serializers.IntegerField(
        min_value=0, max_value=MAX_ID, required=False, help_text="The messages just before it."
    )
    limit = serializers.IntegerField(
        min_value=1, required=False, help_text="Page size: 50 by default, clamped to 200."
    )

    def to_internal_value(self, data: Any) -> Any:
        # History pages by seq: a page number would silently answer the newest page.
        if "page" in data:
            hint = "History pages by seq: use before_seq or after_seq (and limit), not page."
            raise serializers.ValidationError({"page": [hint]})
        return super().to_internal_value(data)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "after_seq" in attrs and "before_seq" in attrs:
            message = "Give after_seq or before_seq, not both."
            raise serializers.ValidationError({"after_seq": [message], "before_seq": [message]})
        return attrs


class ThreadQuery(serializers.Serializer):
    after_seq = serializers.IntegerField(
        min_value=0, max_value=MAX_ID, required=False, help_text="The replies just after it."
    )
    limit = serializers.IntegerField(
        min_value=1, required=False, help_text="Page size: 50 by default, clamped to 200."
    )

    def to_internal_value(self, data: Any) -> Any:
        if "page" in data:
            hint = "A thread pages by seq: use after_seq (and limit), not page."
            raise serializers.ValidationError({"page": [hint]})
        return super().to_internal_value(data)


class ThreadSerializer(serializers.Serializer):
    root = MessageSerializer()
    results = MessageSerializer(many=True, help_text="The replies, in seq order.")
    has_more = serializers.BooleanField(help_text="More replies follow after this page.")


class ThreadStateSerializer(serializers.Serializer):
    message_id = serializers.IntegerField(help_text="The thread's root.")
    following = serializers.BooleanField()
    read_seq = serializers.IntegerField(
        help_text="The caller's thread marker: the seq of the last reply read."
    )


class MyThreadSerializer(serializers.Serializer):
    root = MessageSerializer()
    unread = serializers.IntegerField(
        help_text="Replies by others after the caller's thread marker (the root excluded)."
    )

    def to_representation(self, instance: Any) -> dict[str, Any]:
        viewer = self.context.get("viewer_id")
        return {
            "root": MessageSerializer(instance.root, context={"viewer_id": viewer}).data,
            "unread": int(getattr(instance, "unread", 0) or 0),
        }


class SearchQuery(serializers.Serializer):
    q = serializers.CharField(
        max_length=200, help_text="The words to look for: 1 to 200 characters."
    )
    community = serializers.SlugField(
        max_length=50, required=False, help_text="Only in this community (its slug)."
    )
    room = serializers.IntegerField(
        min_value=1, max_value=MAX_ID, required=False, help_text="Only in this room (its id)."
    )
