"""The report queue: reading it and resolving reports (moderators and up)."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from chat.models import Report
from chat.services.messages import delete_message
from communities.models import Community, Room
from communities.roles import Role
from communities.selectors import readable_rooms_filter
from communities.services.access import is_banned, require_role
from communities.services.audit import audit_record
from communities.services.members import member_mute
from communities.services.moderation import ban_create
from sphere.errors import ApplicationError, Conflict, Invalid, NotFound

ACTIONS = ("dismiss", "delete_message", "mute_author", "ban_author")


def _readable(actor: User, community: Community) -> QuerySet[Room]:
    return Room.objects.filter(readable_rooms_filter(actor), community=community)


def reports_for_moderator(
    *, actor: User, community: Community, status: str | None = None
) -> QuerySet[Report]:
    """Reports on messages of the community's rooms that the moderator can read, newest first.
    Raises NotFound/Forbidden as ``require_role`` does."""
    require_role(actor=actor, community=community, minimum=Role.MODERATOR)
    rooms = _readable(actor, community).values("pk")
    qs = Report.objects.filter(message__room_id__in=rooms)
    if status:
        qs = qs.filter(status=status)
    return (
        qs.select_related("message__author", "message__room", "reporter")
        .prefetch_related("message__reactions")
        .order_by("-created_at", "-id")
    )


def report_get_for_moderator(*, actor: User, report_id: int) -> Report:
    """The report if the caller moderates its community and reads its room; NotFound alike
    for a missing report and one the caller may not see."""
    report = (
        Report.objects.select_related("message__room__community", "message__author", "reporter")
        .filter(pk=report_id)
        .first()
    )
    if report is None:
        raise NotFound("No such report.")
    community = report.message.room.community
    try:
        require_role(actor=actor, community=community, minimum=Role.MODERATOR)
    except ApplicationError as exc:
        raise NotFound("No such report.") from exc
    if not _readable(actor, community).filter(pk=report.message.room_id).exists():
        raise NotFound("No such report.")
    return report


def report_resolve(
    *, actor: User, report: Report, action: str, minutes: int | None = None
) -> Report:
    """Resolve an open report with one action on its message or author; the rank rule applies
    to the author. Records ``report.resolve`` besides the act's own entry (``message.delete``,
    ``member.mute``, ``member.ban``); the act takes effect live. Raises Conflict for a report
    already resolved or an author who is no longer a member (mute), Forbidden by rank, Invalid
    for an unknown action or a mute without ``minutes``."""
    if action not in ACTIONS:
        raise Invalid("Unknown action.", fields={"action": [f"One of {', '.join(ACTIONS)}."]})
    if action == "mute_author" and minutes is None:
        raise Invalid("A mute needs minutes.", fields={"minutes": ["Required to mute."]})
    message = report.message
    community = message.room.community
    with transaction.atomic():
        report = Report.objects.select_for_update().get(pk=report.pk)
        if report.status == Report.Status.RESOLVED:
            raise Conflict("This report is already resolved.")
        if action == "delete_message":
            delete_message(actor=actor, message=message)
        elif action == "mute_author":
            try:
                member_mute(
                    actor=actor,
                    community=community,
                    user_id=message.author_id,
                    minutes=minutes or 0,
                )
            except NotFound as exc:
                raise Conflict("The author is no longer a member.") from exc
        elif action == "ban_author" and not is_banned(
            community=community, user_id=message.author_id
        ):
            ban_create(
                actor=actor,
                community=community,
                user_id=message.author_id,
                reason=f"report {report.pk}: {report.reason}"[:500],
            )
        report.status = Report.Status.RESOLVED
        report.resolution = action
        report.resolved_by = actor
        report.resolved_at = timezone.now()
        report.save(update_fields=["status", "resolution", "resolved_by", "resolved_at"])
        audit_record(
            actor=actor,
            community=community,
            action="report.resolve",
            target=f"report:{report.pk}",
            detail={"action": action, "message": message.pk},
        )
    return report
