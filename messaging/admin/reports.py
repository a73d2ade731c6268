"""The moderation queue (reports) and the audit log of what staff did."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from messaging.admin.base import ReadOnlyAdmin, apply_each, may, tell_done
from messaging.admin.chat_messages import upload_link
from messaging.domain import moderation
from messaging.models import Message, ModerationAction, Report

User = get_user_model()

# Messages shown before and after a reported one, for context.
CONTEXT_MESSAGES = 3


class OpenFirst(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("open", "open"), ("resolved", "resolved"), ("all", "all")]

    def queryset(self, request, queryset):
        value = self.value() or "open"
        if value == "open":
            return queryset.filter(status=Report.Status.OPEN)
        if value == "resolved":
            return queryset.exclude(status=Report.Status.OPEN)
        return queryset

    def choices(self, changelist):
        current = self.value() or "open"
        for lookup, title in self.lookup_choices:
            yield {
                "selected": current == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }


@admin.register(Report)
class ReportAdmin(admin.ModelAdmin):
    """The moderation queue: open reports first, with the message in its context."""

    list_display = ["id", "reported_message", "sender", "reporter", "reason", "created_at"]
    list_filter = [OpenFirst]
    search_fields = ["reason", "message__body", "reporter__username", "message__sender__username"]
    list_select_related = ["message__sender", "reporter"]
    ordering = ["created_at"]
    fields = [
        "reported_message",
        "files",
        "sender",
        "reporter",
        "reason",
        "context",
        "status",
        "resolved_by",
        "resolved_at",
    ]
    readonly_fields = fields
    actions = ["hide_message", "deactivate_sender", "dismiss"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        # Every field is read-only: reports change only through the actions below.
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_hide_message_permission(self, request) -> bool:
        return may(request, Report, "change") and may(request, Message, "change")

    def has_deactivate_sender_permission(self, request) -> bool:
        return may(request, Report, "change") and may(request, User, "change")

    def has_dismiss_permission(self, request) -> bool:
        return may(request, Report, "change")

    @admin.display(description=_("message"))
    def reported_message(self, report: Report) -> str:
        body = report.message.body
        return body if len(body) <= 80 else body[:79] + "…"

    @admin.display(description=_("files"))
    def files(self, report: Report) -> str:
        uploads = report.message.attachments.order_by("position")
        if not uploads:
            return _("none")
        return format_html(
            "<ul>{}</ul>",
            format_html_join("", "<li>{}</li>", ((upload_link(u),) for u in uploads)),
        )

    @admin.display(description=_("sender"))
    def sender(self, report: Report):
        return report.message.sender

    @admin.display(description=_("context"))
    def context(self, report: Report) -> str:
        message = report.message
        around = Message.objects.select_related("sender").filter(
            conversation_id=message.conversation_id
        )
        before = list(around.filter(pk__lt=message.pk).order_by("-pk")[:CONTEXT_MESSAGES])
        after = list(around.filter(pk__gt=message.pk).order_by("pk")[:CONTEXT_MESSAGES])
        rows = [*reversed(before), message, *after]
        return format_html(
            "<ol>{}</ol>",
            format_html_join(
                "",
                "<li>{}</li>",
                ((self._context_line(row, reported=row.pk == message.pk),) for row in rows),
            ),
        )

    @staticmethod
    def _context_line(row: Message, *, reported: bool) -> str:
        line = format_html(
            "{} <b>{}</b>: {}{}",
            row.created_at.strftime("%Y-%m-%d %H:%M"),
            row.sender.username,
            row.body,
            " (deleted)" if row.deleted_at else "",
        )
        return format_html("<mark>{}</mark>", line) if reported else line

    @admin.action(description=_("Hide the reported message"), permissions=["hide_message"])
    def hide_message(self, request, queryset) -> None:
        done = apply_each(
            self,
            request,
            queryset.select_related("message"),
            lambda report: moderation.staff_hide_message(
                staff=request.user, message_id=report.message_id, report=report
            ),
        )
        hid = ngettext(
            "Hid the message of %(count)s report.", "Hid the messages of %(count)s reports.", done
        )
        tell_done(self, request, hid, done)

    @admin.action(description=_("Deactivate the sender"), permissions=["deactivate_sender"])
    def deactivate_sender(self, request, queryset) -> None:
        done = apply_each(
            self,
            request,
            queryset.select_related("message__sender"),
            lambda report: moderation.staff_deactivate_user(
                staff=request.user, user=report.message.sender, report=report
            ),
        )
        tell_done(
            self,
            request,
            ngettext("Deactivated %(count)s sender.", "Deactivated %(count)s senders.", done),
            done,
        )

    @admin.action(description=_("Dismiss"), permissions=["dismiss"])
    def dismiss(self, request, queryset) -> None:
        done = apply_each(
            self,
            request,
            queryset.select_related("message"),
            lambda report: moderation.staff_dismiss_report(staff=request.user, report=report),
        )
        tell_done(
            self,
            request,
            ngettext("Dismissed %(count)s report.", "Dismissed %(count)s reports.", done),
            done,
        )


@admin.register(ModerationAction)
class ModerationActionAdmin(ReadOnlyAdmin):
    """The audit log: staff can read it; nobody can change it here."""

    list_display = ["created_at", "actor", "kind", "target_user", "message", "report"]
    list_filter = ["kind", "created_at"]
    search_fields = ["actor__username", "target_user__username", "note"]
    list_select_related = ["actor", "target_user", "message", "report"]
