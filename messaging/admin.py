"""Moderation through Django admin; hiding goes through the same service as a delete."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.db.models import Count
from django.utils.html import format_html, format_html_join

from messaging import moderation
from messaging.models import (
    AuthToken,
    Conversation,
    Membership,
    Message,
    ModerationAction,
    Report,
    SocketPresence,
)
from messaging.protocol import ChatError
from messaging.search import matching, query_words

User = get_user_model()

# Messages shown before and after a reported one, for context.
CONTEXT_MESSAGES = 3


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ["user"]
    readonly_fields = ["joined_at"]


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "title", "member_names", "message_count", "last_activity_at"]
    list_filter = ["kind"]
    search_fields = ["title", "members__username"]
    readonly_fields = ["direct_key", "created_at", "last_activity_at"]
    inlines = [MembershipInline]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(message_count=Count("messages", distinct=True))
            .prefetch_related("members")
        )

    @admin.display(description="members")
    def member_names(self, conversation: Conversation) -> str:
        return ", ".join(sorted(user.username for user in conversation.members.all()))

    @admin.display(description="messages", ordering="message_count")
    def message_count(self, conversation: Conversation) -> int:
        return conversation.message_count


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["id", "sender", "conversation", "short_body", "created_at", "status"]
    list_filter = [("deleted_at", admin.EmptyFieldListFilter), "created_at"]
    # Bodies are searched through the full-text index (get_search_results), as users do.
    search_fields = ["sender__username", "=conversation__id"]
    list_select_related = ["sender", "conversation"]
    readonly_fields = [
        "conversation",
        "sender",
        "body",
        "client_id",
        "seq",
        "created_at",
        "edited_at",
        "deleted_at",
        "hidden_by",
    ]
    actions = ["hide_messages", "restore_messages"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        # Rows are never removed from here: hiding keeps the id and tells open clients.
        return False

    def get_search_results(self, request, queryset, search_term):
        found, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        try:
            words = query_words(search_term)
        except ChatError:
            return found, may_have_duplicates
        by_body = matching(Message.objects.all(), words).values("pk")
        return found | queryset.filter(pk__in=by_body), True

    @admin.display(description="body")
    def short_body(self, message: Message) -> str:
        return message.body if len(message.body) <= 80 else message.body[:79] + "…"

    @admin.display(description="status")
    def status(self, message: Message) -> str:
        if message.hidden_by_id:
            return "hidden by staff"
        if message.deleted_at:
            return "deleted by sender"
        return "edited" if message.edited_at else "visible"

    @admin.action(description="Hide the selected messages (live, for everyone)")
    def hide_messages(self, request, queryset) -> None:
        done = _each(
            queryset.values_list("pk", flat=True),
            lambda pk: moderation.staff_hide_message(staff=request.user, message_id=pk),
        )
        self.message_user(request, f"Hid {done} message(s).", messages.SUCCESS)

    @admin.action(description="Restore the selected hidden messages")
    def restore_messages(self, request, queryset) -> None:
        done = _each(
            queryset.values_list("pk", flat=True),
            lambda pk: moderation.staff_restore_message(staff=request.user, message_id=pk),
        )
        self.message_user(request, f"Restored {done} message(s).", messages.SUCCESS)


def _each(items, act) -> int:
    """Apply a staff action to each item; count those it applied to."""
    done = 0
    for item in items:
        try:
            act(item)
        except ChatError:
            continue  # Already in that state.
        done += 1
    return done


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

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="message")
    def reported_message(self, report: Report) -> str:
        body = report.message.body
        return body if len(body) <= 80 else body[:79] + "…"

    @admin.display(description="sender")
    def sender(self, report: Report):
        return report.message.sender

    @admin.display(description="context")
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

    @admin.action(description="Hide the reported message")
    def hide_message(self, request, queryset) -> None:
        done = _each(
            queryset.select_related("message"),
            lambda report: moderation.staff_hide_message(
                staff=request.user, message_id=report.message_id, report=report
            ),
        )
        self.message_user(request, f"Hid the message of {done} report(s).", messages.SUCCESS)

    @admin.action(description="Deactivate the sender")
    def deactivate_sender(self, request, queryset) -> None:
        done = _each(
            queryset.select_related("message__sender"),
            lambda report: moderation.staff_deactivate_user(
                staff=request.user, user=report.message.sender, report=report
            ),
        )
        self.message_user(request, f"Deactivated {done} sender(s).", messages.SUCCESS)

    @admin.action(description="Dismiss")
    def dismiss(self, request, queryset) -> None:
        done = _each(
            queryset.select_related("message"),
            lambda report: moderation.staff_dismiss_report(staff=request.user, report=report),
        )
        self.message_user(request, f"Dismissed {done} report(s).", messages.SUCCESS)


@admin.register(ModerationAction)
class ModerationActionAdmin(admin.ModelAdmin):
    """The audit log: staff can read it; nobody can change it here."""

    list_display = ["created_at", "actor", "kind", "target_user", "message", "report"]
    list_filter = ["kind", "created_at"]
    search_fields = ["actor__username", "target_user__username", "note"]
    list_select_related = ["actor", "target_user", "message", "report"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


admin.site.unregister(User)


@admin.register(User)
class ChatUserAdmin(UserAdmin):
    """Users with how much they wrote and how often they were reported."""

    list_display = [
        "username",
        "is_active",
        "is_staff",
        "message_count",
        "report_count",
        "date_joined",
        "last_login",
    ]
    actions = ["deactivate", "reactivate"]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                message_count=Count("messages_sent", distinct=True),
                report_count=Count("messages_sent__reports", distinct=True),
            )
        )

    @admin.display(description="messages", ordering="message_count")
    def message_count(self, user) -> int:
        return user.message_count

    @admin.display(description="reports", ordering="report_count")
    def report_count(self, user) -> int:
        return user.report_count

    def save_model(self, request, obj, form, change) -> None:
        # Deactivating from the form is the same staff action as from the list.
        if change and "is_active" in form.changed_data:
            if obj.is_active:
                moderation.staff_reactivate_user(staff=request.user, user=obj)
            else:
                moderation.staff_deactivate_user(staff=request.user, user=obj)
            form.changed_data.remove("is_active")
        super().save_model(request, obj, form, change)

    @admin.action(description="Deactivate (closes their sockets, stops their tokens)")
    def deactivate(self, request, queryset) -> None:
        done = _each(
            queryset.filter(is_active=True),
            lambda user: moderation.staff_deactivate_user(staff=request.user, user=user),
        )
        self.message_user(request, f"Deactivated {done} user(s).", messages.SUCCESS)

    @admin.action(description="Reactivate")
    def reactivate(self, request, queryset) -> None:
        done = _each(
            queryset.filter(is_active=False),
            lambda user: moderation.staff_reactivate_user(staff=request.user, user=user),
        )
        self.message_user(request, f"Reactivated {done} user(s).", messages.SUCCESS)


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["id", "user", "conversation", "last_read_message_id", "joined_at"]
    search_fields = ["user__username", "=conversation__id"]
    raw_id_fields = ["user", "conversation"]
    list_select_related = ["user", "conversation"]


@admin.register(AuthToken)
class AuthTokenAdmin(admin.ModelAdmin):
    list_display = ["prefix", "user", "name", "created_at", "last_used_at"]
    search_fields = ["user__username", "prefix", "name"]
    readonly_fields = ["prefix", "created_at", "last_used_at"]
    raw_id_fields = ["user"]
    list_select_related = ["user"]

    def has_add_permission(self, request) -> bool:
        # A token's secret is shown once at creation: issue them with the API or
        # `manage.py issue_token`, not here.
        return False


@admin.register(SocketPresence)
class SocketPresenceAdmin(admin.ModelAdmin):
    list_display = ["user", "channel_name", "process", "connected_at"]
    search_fields = ["user__username"]
    list_select_related = ["user"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
