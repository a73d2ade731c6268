"""Reports by members and what staff do about them, every staff action in the audit log."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from messaging.domain import message_changes
from messaging.models import Membership, Message, ModerationAction, Report
from messaging.protocol import ChatError, ErrorCode

User = get_user_model()

MAX_REASON = 1000


def report_create(*, reporter, message_id: int, reason: str) -> tuple[Report, bool]:
    """Report a message of one of the reporter's conversations; once per reporter."""
    reason = reason.strip()
    if not reason:
        raise ChatError(ErrorCode.EMPTY, "say why you report this message")
    if len(reason) > MAX_REASON:
        raise ChatError(ErrorCode.TOO_LONG, f"a reason has at most {MAX_REASON} characters")
    message = Message.objects.filter(pk=message_id).first()
    if (
        message is None
        or not Membership.objects.filter(
            conversation_id=message.conversation_id, user=reporter
        ).exists()
    ):
        raise ChatError(ErrorCode.NOT_FOUND, "no such message")
    try:
        with transaction.atomic():
            return Report.objects.get_or_create(
                message=message, reporter=reporter, defaults={"reason": reason}
            )
    except IntegrityError:
        return Report.objects.get(message=message, reporter=reporter), False


def _log(actor, kind: str, *, target_user=None, message=None, report=None, note: str = ""):
    return ModerationAction.objects.create(
        actor=actor,
        kind=kind,
        target_user=target_user,
        message=message,
        report=report,
        note=note[:200],
    )


def _resolve(reports, *, staff, status: str) -> list[Report]:
    reports = [report for report in reports if report.status == Report.Status.OPEN]
    for report in reports:
        report.status = status
        report.resolved_by = staff
        report.resolved_at = timezone.now()
        report.save(update_fields=["status", "resolved_by", "resolved_at"])
    return reports


def _check_may_moderate(*, staff, user) -> None:
    """Refuse to let anyone but a superuser change whether a superuser can sign in."""
    if user.is_superuser and not staff.is_superuser:
        raise ChatError(
            ErrorCode.FORBIDDEN, f"only a superuser can deactivate or reactivate {user.username}"
        )


@transaction.atomic
def staff_hide_message(*, staff, message_id: int, report: Report | None = None) -> Message:
    """Hide a message for everyone, live; resolve its open reports."""
    message = message_changes.message_hide(moderator=staff, message_id=message_id)
    resolved = _resolve(
        [report] if report else message.reports.all(), staff=staff, status=Report.Status.HIDDEN
    )
    _log(
        staff,
        ModerationAction.Kind.HIDE,
        target_user=message.sender,
        message=message,
        report=resolved[0] if resolved else None,
    )
    return message


@transaction.atomic
def staff_restore_message(*, staff, message_id: int) -> Message:
    """Show a hidden message again, live."""
    message = message_changes.message_restore(moderator=staff, message_id=message_id)
    if message.edited_at is None:
        # The text is still the one first sent: retries are compared with it again.
        message.sent_hash = Message.hash_body(message.body)
        Message.objects.filter(pk=message.pk).update(sent_hash=message.sent_hash)
    _log(staff, ModerationAction.Kind.RESTORE, target_user=message.sender, message=message)
    return message


@transaction.atomic
def staff_deactivate_user(*, staff, user, report: Report | None = None) -> None:
    """Deactivate a user: their sockets close everywhere and their tokens stop working."""
    if user.pk == staff.pk:
        raise ChatError(ErrorCode.FORBIDDEN, "you cannot deactivate yourself")
    _check_may_moderate(staff=staff, user=user)
    reports = Report.objects.filter(message__sender=user, status=Report.Status.OPEN)
    resolved = _resolve(
        [report] if report else reports, staff=staff, status=Report.Status.DEACTIVATED
    )
    if user.is_active:
        user.is_active = False
        user.save(update_fields=["is_active"])
    _log(
        staff,
        ModerationAction.Kind.DEACTIVATE,
        target_user=user,
        report=resolved[0] if resolved else None,
    )


@transaction.atomic
def staff_reactivate_user(*, staff, user) -> None:
    """Let a deactivated user sign in again."""
    _check_may_moderate(staff=staff, user=user)
    if not user.is_active:
        user.is_active = True
        user.save(update_fields=["is_active"])
    _log(staff, ModerationAction.Kind.REACTIVATE, target_user=user)


@transaction.atomic
def staff_dismiss_report(*, staff, report: Report) -> None:
    """Close a report without acting on the message."""
    if _resolve([report], staff=staff, status=Report.Status.DISMISSED):
        _log(
            staff,
            ModerationAction.Kind.DISMISS,
            target_user=report.message.sender,
            message=report.message,
            report=report,
        )
