"""People, their API tokens and their open sockets."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.utils import flatten_fieldsets
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from messaging.admin.base import ReadOnlyAdmin, apply_each, tell_done
from messaging.domain import moderation
from messaging.domain.tokens import token_revoke
from messaging.models import AuthToken, SocketPresence
from messaging.protocol import ChatError

User = get_user_model()

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

    @admin.display(description=_("messages"), ordering="message_count")
    def message_count(self, user) -> int:
        return user.message_count

    @admin.display(description=_("reports"), ordering="report_count")
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
                refused = _("Refused: %(reason)s.") % {"reason": error.detail}
                self.message_user(request, refused, messages.ERROR)
            form.changed_data.remove("is_active")
        super().save_model(request, obj, form, change)

    @admin.action(
        description=_("Deactivate (closes their sockets, stops their tokens)"),
        permissions=["change"],
    )
    def deactivate(self, request, queryset) -> None:
        done = apply_each(
            self,
            request,
            queryset.filter(is_active=True),
            lambda user: moderation.staff_deactivate_user(staff=request.user, user=user),
        )
        tell_done(
            self,
            request,
            ngettext("Deactivated %(count)s person.", "Deactivated %(count)s people.", done),
            done,
        )

    @admin.action(description=_("Reactivate"), permissions=["change"])
    def reactivate(self, request, queryset) -> None:
        done = apply_each(
            self,
            request,
            queryset.filter(is_active=False),
            lambda user: moderation.staff_reactivate_user(staff=request.user, user=user),
        )
        tell_done(
            self,
            request,
            ngettext("Reactivated %(count)s person.", "Reactivated %(count)s people.", done),
            done,
        )


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
