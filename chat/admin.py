"""Chat in the moderators' desk: the report queue, messages, automod terms, the event log.

The report queue lists open reports first; a report's page shows the reported message among
the messages around it, and every action (dismiss, delete the message, mute the author for a
while, ban the author) calls ``report_resolve`` as the signed-in user: the rank rule, the
audit entries and the live effects (``message.deleted``, ``room.removed``) are the service's.
The same actions work on several reports at once from the list.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from chat.models import BlockedTerm, Message, Reaction, ReadMarker, Report, RoomEvent
from chat.services import automod as automod_services
from chat.services import messages as message_services
from chat.services import reports as report_services
from communities.models import Community
from communities.selectors import moderated_community_ids
from sphere.desk import DeskAdmin, counted, duration, excerpt, link, run_service, staff, user_link
from sphere.errors import ApplicationError

CONTEXT = 3  # messages shown before and after a reported one
MESSAGE_FIELDS = ["room_link", "seq", "author_name", "body", "reply_to", "created_at", "edited_at",
                  "deleted"]  # fmt: skip
REPORT_FIELDS = ["status", "community_link", "room_link", "author_name", "reporter_name",
                 "reason", "created_at", "resolution", "resolved_by", "resolved_at",
                 "in_context"]  # fmt: skip
MUTES = {"mute_author_1h": 60, "mute_author_24h": 24 * 60, "mute_author_7d": 7 * 24 * 60}


@admin.register(Message)
class MessageAdmin(DeskAdmin):
    community_path = "room__community"
    room_path = "room"
    date_hierarchy = "created_at"
    list_display = ["id", "room_link", "seq", "author_name", "text", "created_at", "deleted"]
    list_filter = [
        "deleted",
        ("room__community", admin.RelatedOnlyFieldListFilter),
        ("room", admin.RelatedOnlyFieldListFilter),
        "created_at",
    ]
    list_select_related = ["room", "author"]
    search_fields = ["body", "author__username", "room__community__slug"]
    fields = tuple(MESSAGE_FIELDS)
    readonly_fields = MESSAGE_FIELDS
    actions = ["delete_softly"]

    @admin.display(description="room", ordering="room__name")
    def room_link(self, message: Message) -> Any:
        return link(message.room)

    @admin.display(description="author", ordering="author__username")
    def author_name(self, message: Message) -> Any:
        return user_link(message.author)

    @admin.display(description="body")
    def text(self, message: Message) -> str:
        return "(deleted)" if message.deleted else excerpt(message.body)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return admin.ModelAdmin.has_change_permission(self, request, obj)

    @admin.action(description="Delete the messages (they keep their place, empty)",
                  permissions=["change"])  # fmt: skip
    def delete_softly(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        done = 0
        for message in queryset.select_related("room__community", "author"):
            done += run_service(
                self,
                request,
                partial(message_services.message_delete, actor=staff(request), message=message),
                f"Deleting message {message.pk}",
            )
        if done:
            self.message_user(request, f"Deleted {counted(done, 'the message', 'messages')}.")


@admin.register(Report)
class ReportAdmin(DeskAdmin):
    community_path = "message__room__community"
    room_path = "message__room"
    change_form_template = "admin/chat/report/change_form.html"
    ordering = ["status", "-created_at", "-id"]  # open before resolved, newest first
    list_display = ["id", "status", "community_link", "room_link", "author_name", "text",
                    "reporter_name", "reason", "created_at", "resolution"]  # fmt: skip
    list_display_links = ["id", "text"]
    list_filter = [
        "status",
        ("message__room__community", admin.RelatedOnlyFieldListFilter),
        "message__room__kind",
        ("message__room", admin.RelatedOnlyFieldListFilter),
        "resolution",
        "created_at",
    ]
    list_select_related = ["message__room__community", "message__author", "reporter"]
    search_fields = ["reason", "message__body", "reporter__username", "message__author__username",
                     "message__room__community__slug"]  # fmt: skip
    fields = tuple(REPORT_FIELDS)
    readonly_fields = REPORT_FIELDS
    actions = ["dismiss", "delete_message", *MUTES, "ban_author"]

    @admin.display(description="community", ordering="message__room__community__slug")
    def community_link(self, report: Report) -> Any:
        # A DM's reports reach site staff (superusers) alone (docs/dms.md).
        community = report.message.room.community
        return "direct message" if community is None else link(community)

    @admin.display(description="room")
    def room_link(self, report: Report) -> Any:
        return link(report.message.room)

    @admin.display(description="author", ordering="message__author__username")
    def author_name(self, report: Report) -> Any:
        return user_link(report.message.author)

    @admin.display(description="reporter", ordering="reporter__username")
    def reporter_name(self, report: Report) -> Any:
        return user_link(report.reporter) if report.reporter else "automod"

    @admin.display(description="message")
    def text(self, report: Report) -> str:
        message = report.message
        return "(deleted)" if message.deleted else excerpt(message.body)

    @admin.display(description="in context")
    def in_context(self, report: Report) -> Any:
        """The reported message among the ones just before and after it in its room."""
        seq = report.message.seq
        around = (
            Message.objects.filter(
                room_id=report.message.room_id, seq__gte=seq - CONTEXT, seq__lte=seq + CONTEXT
            )
            .select_related("author")
            .order_by("seq")
        )
        rows = format_html_join(
            "",
            "<tr{}><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    mark_safe(' style="font-weight:bold"') if m.pk == report.message_id else "",
                    m.seq,
                    m.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                    m.author.username,
                    "(deleted)" if m.deleted else m.body,
                )
                for m in around
            ),
        )
        return format_html(
            "<table><thead><tr><th>seq</th><th>time</th><th>author</th><th>message</th></tr>"
            "</thead><tbody>{}</tbody></table>",
            rows,
        )

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return admin.ModelAdmin.has_change_permission(self, request, obj)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        """A report changes only by being resolved (the buttons and actions)."""

    # --- resolving --------------------------------------------------------------------------

    def _resolve(
        self, request: HttpRequest, queryset: QuerySet[Any], action: str, minutes: int | None
    ) -> int:
        done = 0
        reports = queryset.select_related("message__room__community", "message__author")
        for report in reports:
            done += run_service(
                self,
                request,
                partial(
                    report_services.report_resolve,
                    actor=staff(request),
                    report=report,
                    action=action,
                    minutes=minutes,
                ),
                f"Resolving report {report.pk}",
            )
        if done:
            self.message_user(request, resolved_message(action, minutes, done))
        return done

    @admin.action(description="Dismiss", permissions=["change"])
    def dismiss(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self._resolve(request, queryset, "dismiss", None)

    @admin.action(description="Delete the reported messages", permissions=["change"])
    def delete_message(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self._resolve(request, queryset, "delete_message", None)

    @admin.action(description="Mute the authors for 1 hour", permissions=["change"])
    def mute_author_1h(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self._resolve(request, queryset, "mute_author", MUTES["mute_author_1h"])

    @admin.action(description="Mute the authors for 24 hours", permissions=["change"])
    def mute_author_24h(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self._resolve(request, queryset, "mute_author", MUTES["mute_author_24h"])

    @admin.action(description="Mute the authors for 7 days", permissions=["change"])
    def mute_author_7d(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self._resolve(request, queryset, "mute_author", MUTES["mute_author_7d"])

    @admin.action(description="Ban the authors", permissions=["change"])
    def ban_author(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self._resolve(request, queryset, "ban_author", None)

    def get_urls(self) -> list[URLPattern]:
        resolve = path(
            "<int:report_id>/resolve/",
            self.admin_site.admin_view(self.resolve_view),
            name="chat_report_resolve",
        )
        return [resolve, *super().get_urls()]

    def resolve_view(self, request: HttpRequest, report_id: int) -> HttpResponse:
        """The buttons of a report's page: one action, with minutes for a mute."""
        back = reverse("admin:chat_report_changelist")
        if request.method != "POST" or not self.has_change_permission(request):
            return HttpResponseRedirect(back)
        queryset = self.get_queryset(request).filter(pk=report_id)
        get_object_or_404(queryset)
        action = request.POST.get("resolve", "")
        minutes: int | None = None
        if action == "mute_author":
            try:
                minutes = int(request.POST.get("minutes", ""))
            except ValueError:
                self.message_user(request, "A mute needs minutes.", messages.ERROR)
                return HttpResponseRedirect(reverse("admin:chat_report_change", args=[report_id]))
        self._resolve(request, queryset, action, minutes)
        return HttpResponseRedirect(back)


def resolved_message(action: str, minutes: int | None, done: int) -> str:
    """What the desk says once ``done`` reports are resolved with ``action``, in words."""
    if action == "dismiss":
        return f"Dismissed {counted(done, 'the report', 'reports')}."
    if action == "delete_message":
        return f"Deleted {counted(done, 'the reported message', 'reported messages')}."
    whom = "the author" if done == 1 else f"the authors of {done} reports"
    if action == "mute_author":
        return f"Muted {whom} for {duration(minutes or 0)}."
    if action == "ban_author":
        return f"Banned {whom} from the community."
    return f"Resolved {counted(done, 'the report', 'reports')}."


class BlockedTermForm(forms.ModelForm):
    class Meta:
        model = BlockedTerm
        fields = ["community", "term", "action"]

    def clean_term(self) -> str:
        try:
            return automod_services.clean_term(self.cleaned_data.get("term", ""))
        except ApplicationError as exc:
            raise forms.ValidationError(exc.message) from exc


@admin.register(BlockedTerm)
class BlockedTermAdmin(DeskAdmin):
    """Automod terms: ``block`` refuses a message (``blocked_content``), ``flag`` lets it
    through and opens a report. Whole words, any case. Changes go through the services
    (moderators and up, audited)."""

    form = BlockedTermForm
    list_display = ["term", "action", "community"]
    list_filter = ["action", ("community", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["community"]
    search_fields = ["term", "community__slug"]
    actions = ["remove_terms"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return admin.ModelAdmin.has_add_permission(self, request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return admin.ModelAdmin.has_change_permission(self, request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return admin.ModelAdmin.has_delete_permission(self, request, obj)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "community":
            # Terms are added only where the user moderates (the service's rule, shown early);
            # superusers may leave it empty for a site term, applied in DMs (docs/dms.md).
            site_staff = bool(getattr(request.user, "is_superuser", False))
            kwargs["queryset"] = (
                Community.objects.all()
                if site_staff
                else Community.objects.filter(pk__in=moderated_community_ids(user=request.user))
            )
            kwargs["required"] = not site_staff
            if site_staff:
                kwargs["help_text"] = "Empty: a site term, applied in direct messages."
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        data = form.cleaned_data
        if change:
            current = BlockedTerm.objects.select_related("community").get(pk=obj.pk)
            run_service(
                self,
                request,
                lambda: automod_services.blocked_term_change(
                    actor=staff(request), blocked=current, term=data["term"], action=data["action"]
                ),
                "Changing the term",
            )
            return
        made: list[BlockedTerm] = []
        run_service(
            self,
            request,
            lambda: made.append(
                automod_services.blocked_term_add(
                    actor=staff(request),
                    community=data["community"],
                    term=data["term"],
                    action=data["action"],
                )
            ),
            "Adding the term",
        )
        if made:
            obj.pk = made[0].pk

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        self._remove(request, obj)

    def _remove(self, request: HttpRequest, obj: Any) -> bool:
        return run_service(
            self,
            request,
            lambda: automod_services.blocked_term_remove(actor=staff(request), blocked=obj),
            "Removing the term",
        )

    @admin.action(description="Remove the terms", permissions=["delete"])
    def remove_terms(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        removed = [b.term for b in queryset.select_related("community") if self._remove(request, b)]
        if removed:
            first = f'the term "{removed[0]}"'
            self.message_user(request, f"Removed {counted(len(removed), first, 'terms')}.")


@admin.register(RoomEvent)
class RoomEventAdmin(DeskAdmin):
    """The room event log that ``sync`` replays: read-only, for tracing a delivery."""

    community_path = "room__community"
    room_path = "room"
    list_display = ["room", "seq", "type", "created_at"]
    list_filter = ["type", ("room__community", admin.RelatedOnlyFieldListFilter), "created_at"]
    list_select_related = ["room"]
    search_fields = ["room__name", "type"]


@admin.register(Reaction)
class ReactionAdmin(DeskAdmin):
    community_path = "message__room__community"
    room_path = "message__room"
    list_display = ["emoji", "message", "user", "created_at"]
    list_filter = [("message__room__community", admin.RelatedOnlyFieldListFilter), "created_at"]
    list_select_related = ["message", "user"]
    search_fields = ["emoji", "user__username"]


@admin.register(ReadMarker)
class ReadMarkerAdmin(DeskAdmin):
    community_path = "room__community"
    room_path = "room"
    list_display = ["user", "room", "seq"]
    list_filter = [("room__community", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["user", "room"]
    search_fields = ["user__username", "room__name"]
