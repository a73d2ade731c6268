"""Messages and their files: looked at, hidden and restored by staff."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from messaging.admin.base import NothingChanged, ReadOnlyAdmin, apply_each, may, tell_done
from messaging.domain import moderation
from messaging.domain.search import matching, query_words
from messaging.models import Message, Upload
from messaging.protocol import ChatError
from messaging.web.uploads import file_response


def upload_link(upload: Upload) -> str:
    """Link to a message's file as staff download it (MessageAdmin.upload_view)."""
    return format_html(
        '<a href="{}">{}</a> ({}, {} bytes)',
        reverse("admin:messaging_message_upload", args=[upload.pk]),
        upload.name,
        upload.content_type,
        upload.size,
    )


class UploadInline(NothingChanged, admin.TabularInline):
    """A message's files, in their order, each a link: shown, never changed here."""

    model = Upload
    fk_name = "message"
    extra = 0
    fields = ["position", "file_link", "width", "height", "created_at"]
    readonly_fields = fields
    ordering = ["position"]

    @admin.display(description=_("file"))
    def file_link(self, upload: Upload) -> str:
        return upload_link(upload)


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
    inlines = [UploadInline]

    def get_urls(self):
        view = self.admin_site.admin_view(self.upload_view)
        return [
            path("upload/<slug:upload_id>/", view, name="messaging_message_upload"),
            *super().get_urls(),
        ]

    def upload_view(self, request: HttpRequest, upload_id: str) -> HttpResponse:
        """Answer a message's file to staff who may view messages, hidden ones too."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        upload = get_object_or_404(Upload, pk=upload_id, message__isnull=False)
        return file_response(upload)

    # Rows are never changed or removed from here: hiding keeps the id and tells open
    # clients, and it takes the permission to change messages.
    def has_moderate_permission(self, request) -> bool:
        return may(request, Message, "change")

    def get_search_results(self, request, queryset, search_term):
        found, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        try:
            words = query_words(search_term)
        except ChatError:
            return found, may_have_duplicates
        by_body = matching(Message.objects.all(), words).values("pk")
        return found | queryset.filter(pk__in=by_body), True

    @admin.display(description=_("body"))
    def short_body(self, message: Message) -> str:
        return message.body if len(message.body) <= 80 else message.body[:79] + "…"

    @admin.display(description=_("status"))
    def status(self, message: Message) -> str:
        if message.hidden_by_id:
            return _("hidden by staff")
        if message.deleted_at:
            return _("deleted by sender")
        return _("edited") if message.edited_at else _("visible")

    @admin.action(
        description=_("Hide the selected messages (live, for everyone)"), permissions=["moderate"]
    )
    def hide_messages(self, request, queryset) -> None:
        done = apply_each(
            self,
            request,
            queryset.values_list("pk", flat=True),
            lambda pk: moderation.staff_hide_message(staff=request.user, message_id=pk),
        )
        tell_done(
            self,
            request,
            ngettext("Hid %(count)s message.", "Hid %(count)s messages.", done),
            done,
        )

    @admin.action(description=_("Restore the selected hidden messages"), permissions=["moderate"])
    def restore_messages(self, request, queryset) -> None:
        done = apply_each(
            self,
            request,
            queryset.values_list("pk", flat=True),
            lambda pk: moderation.staff_restore_message(staff=request.user, message_id=pk),
        )
        tell_done(
            self,
            request,
            ngettext("Restored %(count)s message.", "Restored %(count)s messages.", done),
            done,
        )
