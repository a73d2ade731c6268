"""Moderation through Django admin; hiding goes through the same service as a delete.

Staff moderate by hiding messages and deactivating users, each action only with the
matching change permission. Nothing here lets staff read themselves into a conversation,
act as someone else (a token's owner, a password), or edit rows the services keep
consistent (messages, conversations, memberships, tokens, presence): those are read-only.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.utils import flatten_fieldsets
from django.contrib.auth import get_permission_codename, get_user_model
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.utils.html import format_html, format_html_join

from messaging.domain import moderation
from messaging.domain.search import matching, query_words
from messaging.domain.tokens import token_revoke
from messaging.models import (
    AuthToken,
    Conversation,
    Membership,
    Message,
    ModerationAction,
    Report,
    SocketPresence,
)
from messaging.protocol import ChatError, ErrorCode

User = get_user_model()

# Messages shown before and after a reported one, for context.
CONTEXT_MESSAGES = 3


def _may(request, model, action: str) -> bool:
    """Tell whether the user holds Django's `action` permission ("change", ...) on the model."""
    opts = model._meta
    return request.user.has_perm(f"{opts.app_label}.{get_permission_codename(action, opts)}")


class NothingChanged:
    """Rows staff may look at but neither add, change nor delete here."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ReadOnlyAdmin(NothingChanged, admin.ModelAdmin):
    """A list and pages of rows that are only looked at here."""


class MembershipInline(NothingChanged, admin.TabularInline):
    """Who is in a conversation: shown, never changed here.

    Adding oneself to a private conversation would read it silently; members join and
    leave through the chat, where everyone in the conversation sees it.
    """

    model = Membership
    extra = 0
    fields = ["user", "joined_at", "last_read_message_id", "visible_to_members"]
    readonly_fields = fields


@admin.register(Conversation)
class ConversationAdmin(ReadOnlyAdmin):
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
class MessageAdmin(ReadOnlyAdmin):
    list_display = ["id", "sender", "conversation", "short_body", "created_at", "status"]
    list_filter = [("deleted_at", admin.EmptyFieldListFilter), "created_at"]
    # Bodies are searched through the full-text index (get_search_results), as users do.
    search_fields = ["sender__username", "=conversation__id"]
    list_select_related = ["sender", "conversation"]
    readonly_fields = [
        "conversation",
        "sender",
        "kind",
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

    # Rows are never changed or removed from here: hiding keeps the id and tells open
    # clients, and it takes the permission to change messages.
    def has_moderate_permission(self, request) -> bool:
        return _may(request, Message, "change")

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

    @admin.action(
        description="Hide the selected messages (live, for everyone)", permissions=["moderate"]
    )
    def hide_messages(self, request, queryset) -> None:
        done = _each(
            self,
            request,
            queryset.values_list("pk", flat=True),
            lambda pk: moderation.staff_hide_message(staff=request.user, message_id=pk),
        )
        self.message_user(request, f"Hid {done} message(s).", messages.SUCCESS)

    @admin.action(description="Restore the selected hidden messages", permissions=["moderate"])
    def restore_messages(self, request, queryset) -> None:
        done = _each(
            self,
            request,
            queryset.values_list("pk", flat=True),
            lambda pk: moderation.staff_restore_message(staff=request.user, message_id=pk),
        )
        self.message_user(request, f"Restored {done} message(s).", messages.SUCCESS)


def _each(model_admin, request, items, act) -> int:
    """Apply a staff action to each item; count those it applied to, and tell the refusals."""
    done = 0
    refusals: dict[str, int] = {}
    for item in items:
        try:
            act(item)
        except ChatError as error:
            if error.code == ErrorCode.FORBIDDEN:
                refusals[error.detail] = refusals.get(error.detail, 0) + 1
            continue  # Otherwise already in that state.
        done += 1
    for detail, count in refusals.items():
        model_admin.message_user(
            request, f"Refused {count}: {detail}.", messages.WARNING, fail_silently=True
        )
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

    def has_change_permission(self, request, obj=None) -> bool:
        # Every field is read-only: reports change only through the actions below.
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_hide_message_permission(self, request) -> bool:
        return _may(request, Report, "change") and _may(request, Message, "change")

    def has_deactivate_sender_permission(self, request) -> bool:
        return _may(request, Report, "change") and _may(request, User, "change")

    def has_dismiss_permission(self, request) -> bool:
        return _may(request, Report, "change")

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

    @admin.action(description="Hide the reported message", permissions=["hide_message"])
    def hide_message(self, request, queryset) -> None:
        done = _each(
            self,
            request,
            queryset.select_related("message"),
            lambda report: moderation.staff_hide_message(
                staff=request.user, message_id=report.message_id, report=report
            ),
        )
        self.message_user(request, f"Hid the message of {done} report(s).", messages.SUCCESS)

    @admin.action(description="Deactivate the sender", permissions=["deactivate_sender"])
    def deactivate_sender(self, request, queryset) -> None:
        done = _each(
            self,
            request,
            queryset.select_related("message__sender"),
            lambda report: moderation.staff_deactivate_user(
                staff=request.user, user=report.message.sender, report=report
            ),
        )
        self.message_user(request, f"Deactivated {done} sender(s).", messages.SUCCESS)

    @admin.action(description="Dismiss", permissions=["dismiss"])
    def dismiss(self, request, queryset) -> None:
        done = _each(
            self,
            request,
            queryset.select_related("message"),
            lambda report: moderation.staff_dismiss_report(staff=request.user, report=report),
        )
        self.message_user(request, f"Dismissed {done} report(s).", messages.SUCCESS)


@admin.register(ModerationAction)
class ModerationActionAdmin(ReadOnlyAdmin):
    """The audit log: staff can read it; nobody can change it here."""

    list_display = ["created_at", "actor", "kind", "target_user", "message", "report"]
    list_filter = ["kind", "created_at"]
    search_fields = ["actor__username", "target_user__username", "note"]
    list_select_related = ["actor", "target_user", "message", "report"]


admin.site.unregister(User)


@admin.register(User)
class ChatUserAdmin(UserAdmin):
    """Users with how much they wrote and how often they were reported.

    Staff who are not superusers may only deactivate and reactivate people who are not
    superusers (nor themselves): every other field is read-only for them, and adding,
    deleting and setting passwords (which would let them sign in as someone) are for
    superusers.
    """

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

    def has_add_permission(self, request) -> bool:
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return super().get_readonly_fields(request, obj)
        may_switch = obj.pk != request.user.pk and (
            request.user.is_superuser or not obj.is_superuser
        )
        if request.user.is_superuser:
            readonly = list(super().get_readonly_fields(request, obj))
        else:
            # The password field is read-only by nature and shows no hash.
            readonly = [
                name
                for name in flatten_fieldsets(self.get_fieldsets(request, obj))
                if name not in ("password", "is_active")
            ]
        if not may_switch:
            readonly.append("is_active")
        return readonly

    def user_change_password(self, request, id, form_url=""):
        if not request.user.is_superuser:
            raise PermissionDenied
        return super().user_change_password(request, id, form_url)

    def save_model(self, request, obj, form, change) -> None:
        # Deactivating from the form is the same staff action as from the list.
        if change and "is_active" in form.changed_data:
            try:
                if obj.is_active:
                    moderation.staff_reactivate_user(staff=request.user, user=obj)
                else:
                    moderation.staff_deactivate_user(staff=request.user, user=obj)
            except ChatError as error:
                obj.is_active = not obj.is_active
                self.message_user(request, f"Refused: {error.detail}.", messages.ERROR)
            form.changed_data.remove("is_active")
        super().save_model(request, obj, form, change)

    @admin.action(
        description="Deactivate (closes their sockets, stops their tokens)", permissions=["change"]
    )
    def deactivate(self, request, queryset) -> None:
        done = _each(
            self,
            request,
            queryset.filter(is_active=True),
            lambda user: moderation.staff_deactivate_user(staff=request.user, user=user),
        )
        self.message_user(request, f"Deactivated {done} user(s).", messages.SUCCESS)

    @admin.action(description="Reactivate", permissions=["change"])
    def reactivate(self, request, queryset) -> None:
        done = _each(
            self,
            request,
            queryset.filter(is_active=False),
            lambda user: moderation.staff_reactivate_user(staff=request.user, user=user),
        )
        self.message_user(request, f"Reactivated {done} user(s).", messages.SUCCESS)


@admin.register(Membership)
class MembershipAdmin(ReadOnlyAdmin):
    """Memberships, to look at: see MembershipInline for why they are not changed here."""

    list_display = ["id", "user", "conversation", "last_read_message_id", "joined_at"]
    search_fields = ["user__username", "=conversation__id"]
    list_select_related = ["user", "conversation"]


@admin.register(AuthToken)
class AuthTokenAdmin(admin.ModelAdmin):
    """Bearer tokens: staff may look at them and revoke (delete) them, nothing else.

    A token pointed at another user would let whoever holds it act as that user.
    """

    list_display = ["prefix", "user", "name", "created_at", "last_used_at", "expires_at"]
    search_fields = ["user__username", "prefix", "name"]
    fields = ["prefix", "user", "name", "created_at", "last_used_at", "expires_at"]
    readonly_fields = fields
    list_select_related = ["user"]

    def has_add_permission(self, request) -> bool:
        # A token's secret is shown once at creation: issue them with the API or
        # `manage.py issue_token`, not here.
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    # Revoking here is revoking anywhere: the sockets opened with the token close at once.
    def delete_model(self, request, obj) -> None:
        token_revoke(user=obj.user, token_id=obj.pk)

    def delete_queryset(self, request, queryset) -> None:
        for token in queryset.select_related("user"):
            token_revoke(user=token.user, token_id=token.pk)


@admin.register(SocketPresence)
class SocketPresenceAdmin(ReadOnlyAdmin):
    """Open sockets, kept by the processes holding them: a deleted row would only lie."""

    list_display = ["user", "channel_name", "process", "connected_at"]
    search_fields = ["user__username"]
    list_select_related = ["user"]
