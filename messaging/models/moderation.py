"""Reports of messages and the audit log of what staff did about them."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from messaging.models.messages import Message


class Report(models.Model):
    """A member's report of a message, waiting for staff."""

    class Status(models.TextChoices):
        OPEN = "open"
        HIDDEN = "hidden", "message hidden"
        DEACTIVATED = "deactivated", "sender deactivated"
        DISMISSED = "dismissed"

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="reports")
    reporter = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reports_made"
    )
    reason = models.TextField(max_length=1000)
    created_at = models.DateTimeField(auto_now_add=True)
    status = models.CharField(
        max_length=12, choices=Status.choices, default=Status.OPEN, db_index=True
    )
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="reports_resolved",
    )
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["message", "reporter"], name="one_report_per_reporter")
        ]
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"report #{self.pk} of message #{self.message_id}"


class ModerationAction(models.Model):
    """An entry of the audit log: what a staff member did, to what, and when."""

    class Kind(models.TextChoices):
        HIDE = "hide", "hid a message"
        RESTORE = "restore", "restored a message"
        DEACTIVATE = "deactivate", "deactivated a user"
        REACTIVATE = "reactivate", "reactivated a user"
        DISMISS = "dismiss", "dismissed a report"

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    kind = models.CharField(max_length=12, choices=Kind.choices)
    target_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="moderation_received",
    )
    message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    report = models.ForeignKey(
        Report, null=True, blank=True, on_delete=models.SET_NULL, related_name="actions"
    )
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.actor} {self.get_kind_display()} at {self.created_at:%Y-%m-%d %H:%M}"
