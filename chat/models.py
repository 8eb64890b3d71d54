"""Messages and the room event log.

Every persistent change in a room is a RoomEvent with the room's next seq, written in the same
transaction as the change and under the room's row lock. The log is what live delivery sends
and what ``sync`` replays.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from communities.models import Community, Room

User = settings.AUTH_USER_MODEL


class Message(models.Model):
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="messages")
    seq = models.BigIntegerField()  # the seq of its message.new event
    # The seq of the last event that changed it (its message.new, an edit, its deletion, a
    # reaction): a client applies an event to the message only when the event is newer.
    event_seq = models.BigIntegerField(default=0)
    author = models.ForeignKey(User, on_delete=models.CASCADE, related_name="messages")
    client_msg_id = models.CharField(max_length=64)
    body = models.TextField()
    reply_to = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="replies"
    )
    mentions = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    edited_at = models.DateTimeField(null=True, blank=True)
    deleted = models.BooleanField(default=False)

    class Meta:
        ordering = ["room_id", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["room", "seq"], name="message_room_seq"),
            models.UniqueConstraint(
                fields=["room", "author", "client_msg_id"], name="message_idempotency"
            ),
        ]
        indexes = [models.Index(fields=["room", "author", "-created_at"])]

    def __str__(self) -> str:
        return f"message {self.pk} in room {self.room_id} seq {self.seq}"


class RoomEvent(models.Model):
    """One persistent room event; ``payload`` is the event's frame without ``type``."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="events")
    seq = models.BigIntegerField()
    type = models.CharField(max_length=24)
    payload = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["room_id", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["room", "seq"], name="room_event_seq"),
        ]

    def __str__(self) -> str:
        return f"{self.type} room {self.room_id} seq {self.seq}"


class Reaction(models.Model):
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="reactions")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    emoji = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["message", "user", "emoji"], name="reaction_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.emoji} by {self.user_id} on {self.message_id}"


class ReadMarker(models.Model):
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="read_markers")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="read_markers")
    seq = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["room", "user"], name="read_marker_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} read room {self.room_id} to {self.seq}"


class Report(models.Model):
    class Status(models.TextChoices):
        OPEN = "open"
        RESOLVED = "resolved"

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="reports")
    reporter = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, related_name="reports_made"
    )
    reason = models.CharField(max_length=1000, blank=True, default="")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    resolution = models.CharField(max_length=20, blank=True, default="")
    resolved_by = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "-created_at"])]
        constraints = [
            models.UniqueConstraint(
                fields=["message", "reporter"],
                condition=models.Q(status="open"),
                name="report_one_open_per_reporter",
            ),
        ]

    def __str__(self) -> str:
        return f"report {self.pk} on message {self.message_id} ({self.status})"


class BlockedTerm(models.Model):
    """Automod: a whole word, matched case-insensitively, that blocks a message or flags it."""

    class Action(models.TextChoices):
        BLOCK = "block"
        FLAG = "flag"

    community = models.ForeignKey(Community, on_delete=models.CASCADE, related_name="terms")
    term = models.CharField(max_length=100)
    action = models.CharField(max_length=5, choices=Action.choices, default=Action.BLOCK)

    class Meta:
        verbose_name = "automod term"  # the desk's name for these (docs/moderation.md)
        constraints = [
            models.UniqueConstraint(fields=["community", "term"], name="blocked_term_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.action} '{self.term}' in {self.community_id}"
