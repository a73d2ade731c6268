"""What the admin's pages share: permissions, read-only rows, applying a staff action."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth import get_permission_codename
from django.utils.translation import ngettext

from messaging.protocol import ChatError, ErrorCode


def may(request, model, action: str) -> bool:
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


def apply_each(model_admin, request, items, act) -> int:
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
        text = ngettext(
            "Refused for %(count)s: %(reason)s.", "Refused for %(count)s: %(reason)s.", count
        )
        model_admin.message_user(
            request,
            text % {"count": count, "reason": detail},
            messages.WARNING,
            fail_silently=True,
        )
    return done


def tell_done(model_admin, request, text: str, count: int) -> None:
    """Tell staff how many rows an action changed (`text`: ngettext's, with %(count)s)."""
    model_admin.message_user(request, text % {"count": count}, messages.SUCCESS)
