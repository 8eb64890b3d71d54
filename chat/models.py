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
    # A reply in the thread of this top-level message of the same room (docs/threads.md).
    thread_root = models.ForeignKey(
        "self", on_delete=models.CASCADE, null=True, blank=True, related_name="thread_replies"
    )
    # On a root: its thread's summary, kept by the writer under the room's lock with each reply.
    thread_reply_count = models.PositiveIntegerField(default=0)
    thread_last_reply_at = models.DateTimeField(null=True, blank=True)
    thread_participants = models.JSONField(default=list, blank=True)  # user ids, first reply first

    class Meta:
        ordering = ["room_id", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["room", "seq"], name="message_room_seq"),
            models.UniqueConstraint(
                fields=["room", "author", "client_msg_id"], name="message_idempotency"
            ),
        ]
        indexes = [
            models.Index(fields=["room", "author", "-created_at"]),
            models.Index(fields=["thread_root", "seq"], name="message_thread_seq"),
        ]

    def __str__(self) -> str:
        return f"message {self.pk} in room {self.room_id} seq {self.seq}"


class ThreadFollow(models.Model):
    """A user's standing in one thread: whether they follow it, and their thread read marker
    (the seq of the last reply they read). One row per user and thread they touched, never
    one per message (docs/threads.md)."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="thread_follows")
    root = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="follows")
    # True: follows; False: chose to unfollow (automatic follows leave it so); None: no choice
    # yet (a thread marker alone): an automatic follow makes it True.
    following = models.BooleanField(null=True, default=True)
    read_seq = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "root"], name="thread_follow_unique"),
        ]
        indexes = [models.Index(fields=["user", "following"], name="thread_follow_user")]

    def __str__(self) -> str:
        return f"{self.user_id} {'follows' if self.following else 'left'} thread {self.root_id}"


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

    # None: a site-wide term, applied in direct messages (which have no community).
    community = models.ForeignKey(
        Community, on_delete=models.CASCADE, related_name="terms", null=True, blank=True
    )
    term = models.CharField(max_length=100)
    action = models.CharField(max_length=5, choices=Action.choices, default=Action.BLOCK)

    class Meta:
        verbose_name = "automod term"  # the desk's name for these (docs/moderation.md)
        constraints = [
            models.UniqueConstraint(fields=["community", "term"], name="blocked_term_unique"),
            models.UniqueConstraint(
                fields=["term"],
                condition=models.Q(community__isnull=True),
                name="blocked_term_site_unique",
            ),
        ]

    def __str__(self) -> str:
        where = self.community_id if self.community_id is not None else "direct messages"
        return f"{self.action} '{self.term}' in {where}"
