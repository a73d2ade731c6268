"""Conversations and memberships: looked at, never changed here."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count
from django.utils.translation import gettext_lazy as _

from messaging.admin.base import NothingChanged, ReadOnlyAdmin
from messaging.models import Conversation, Membership


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

    @admin.display(description=_("members"))
    def member_names(self, conversation: Conversation) -> str:
        return ", ".join(sorted(user.username for user in conversation.members.all()))

    @admin.display(description=_("messages"), ordering="message_count")
    def message_count(self, conversation: Conversation) -> int:
        return conversation.message_count


@admin.register(Membership)
class MembershipAdmin(ReadOnlyAdmin):
    """Memberships, to look at: see MembershipInline for why they are not changed here."""

    list_display = ["id", "user", "conversation", "last_read_message_id", "joined_at"]
    search_fields = ["user__username", "=conversation__id"]
    list_select_related = ["user", "conversation"]
