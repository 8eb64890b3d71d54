"""Reports: a reader opens one, a moderator resolves it. Reading the queue is in
``chat.selectors``."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from chat.models import Message, Report
from chat.services.limits import check_act_rate
from chat.services.messages import message_delete
from chat.services.text import refuse_unstorable
from communities.services.access import is_banned
from communities.services.audit import audit_record
from communities.services.members import member_mute
from communities.services.moderation import ban_create
from sphere.errors import Conflict, Invalid, NotFound

ACTIONS = ("dismiss", "delete_message", "mute_author", "ban_author")


def report_create(*, actor: User, message: Message, reason: str) -> Report:
    """Report a message to the community's moderators (a reader's act; the caller fetched the
    message with ``chat.selectors.message_get_for_reader``). Raises Invalid (a reason not 1 to
    1,000 characters after trimming, or one holding NUL), Conflict (a deleted message, or an
    open report of this reporter on it already), RateLimited past ``SPHERE_RATE_REPORTS``.
    Emits no event: moderators find it in the queue (docs/api.md, Reports;
    docs/moderation.md)."""
    reason = refuse_unstorable(reason, field="reason").strip()
    if not 1 <= len(reason) <= 1000:
        raise Invalid("A reason is 1 to 1,000 characters.", fields={"reason": ["1 to 1,000."]})
    if message.deleted:
        raise Conflict("The message was deleted.")
    check_act_rate("report", user_id=actor.pk)
    try:
        with transaction.atomic():
            return Report.objects.create(message=message, reporter=actor, reason=reason)
    except IntegrityError as exc:  # the open report of this reporter, concurrent or earlier
        raise Conflict("You already reported this message.") from exc


def report_resolve(
    *, actor: User, report: Report, action: str, minutes: int | None = None
) -> Report:
    """Resolve an open report with one action on its message or author; the rank rule applies
    to the author. Records ``report.resolve`` besides the act's own entry (``message.delete``,
    ``member.mute``, ``member.ban``); the act takes effect live and emits what its service
    emits (``message.deleted``; ``room.removed`` to a banned author). Raises Conflict for a
    report already resolved or an author who is no longer a member (mute), Forbidden by rank,
    Invalid for an unknown action or a mute without ``minutes``."""
    if action not in ACTIONS:
        raise Invalid("Unknown action.", fields={"action": [f"One of {', '.join(ACTIONS)}."]})
    if action == "mute_author" and minutes is None:
        raise Invalid("A mute needs minutes.", fields={"minutes": ["Required to mute."]})
    message = report.message
    community = message.room.community
    if community is None and action not in ("dismiss", "delete_message"):
        # A DM's report goes to site staff, who may delete the message: a DM has no
        # community to mute or ban its author in (docs/dms.md).
        raise Conflict("A direct message's author cannot be muted or banned; delete it instead.")
    with transaction.atomic():
        report = Report.objects.select_for_update().get(pk=report.pk)
        if report.status == Report.Status.RESOLVED:
            raise Conflict("This report is already resolved.")
        if action == "delete_message":
            message_delete(actor=actor, message=message)
        elif action == "mute_author" and community is not None:
            try:
                member_mute(
                    actor=actor,
                    community=community,
                    user_id=message.author_id,
                    minutes=minutes or 0,
                )
            except NotFound as exc:
                raise Conflict("The author is no longer a member.") from exc
        elif (
            action == "ban_author"
            and community is not None
            and not is_banned(community=community, user_id=message.author_id)
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
        if community is not None:  # a DM's resolution is recorded on the report alone
            audit_record(
                actor=actor,
                community=community,
                action="report.resolve",
                target=f"report:{report.pk}",
                detail={"action": action, "message": message.pk},
            )
    return report
