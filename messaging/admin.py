"""Moderation through Django admin; hiding goes through the same service as a delete."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Count

from messaging import services
from messaging.models import AuthToken, Conversation, Membership, Message, SocketPresence
from messaging.protocol import ChatError


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
    search_fields = ["body", "sender__username", "=conversation__id"]
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
    actions = ["hide_messages"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        # Rows are never removed from here: hiding keeps the id and tells open clients.
        return False

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
        hidden = 0
        for message_id in queryset.values_list("pk", flat=True):
            try:
                services.message_hide(moderator=request.user, message_id=message_id)
            except ChatError:
                continue  # Already deleted.
            hidden += 1
        self.message_user(request, f"Hid {hidden} message(s).", messages.SUCCESS)


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
    list_display = ["user", "channel_name", "connected_at", "heartbeat_at"]
    search_fields = ["user__username"]
    list_select_related = ["user"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
