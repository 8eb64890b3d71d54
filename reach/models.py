"""Link reach of the embedded mode: exact counts in the database (``reach.store``).

The fan-out tier knows ids only, so communities and users are plain integers here: a
statistic never blocks a community's or a user's deletion, and recording never fails on a row
that went away while its message was being fanned out.
"""

from __future__ import annotations

from django.db import models


class LinkStat(models.Model):
    """One normalized URL in one room of a community: how many messages carried it. The
    endpoint adds up the rooms its caller can read (``reach.selectors``). Rows counted before
    reach was kept per room have no room: only a caller who reads every room sees them."""

    community_id = models.BigIntegerField()
    room_id = models.BigIntegerField(null=True)
    # sha256 of the normalized URL, hex, truncated: a bounded, indexable key for any URL.
    digest = models.CharField(max_length=32)
    url = models.TextField()
    shares = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["community_id", "room_id", "digest"], name="linkstat_room_link"
            ),
        ]

    def __str__(self) -> str:
        return f"link {self.digest} in room {self.room_id} of community {self.community_id}"


class LinkReader(models.Model):
    """A user who could read the room where the link was posted, counted once per link and
    room."""

    link = models.ForeignKey(LinkStat, on_delete=models.CASCADE, related_name="readers")
    user_id = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["link", "user_id"], name="linkreader_once"),
        ]

    def __str__(self) -> str:
        return f"user {self.user_id} reached by link {self.link_id}"
