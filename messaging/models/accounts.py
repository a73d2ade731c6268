"""What belongs to a person's account: tokens, settings, blocks, pushes, the verified address."""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.db import models

from messaging.models.conversations import Conversation


class AuthToken(models.Model):
    """A bearer token for clients that are not browsers; only its hash is stored."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="auth_tokens"
    )
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    # The first characters, so staff can tell tokens apart without seeing them.
    prefix = models.CharField(max_length=8, editable=False)
    name = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    # After this the token no longer authenticates (CHAT_TOKEN_LIFETIME_DAYS from its issue).
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)

    def __str__(self) -> str:
        return f"{self.prefix}… for {self.user}"

    @staticmethod
    def hash_key(key: str) -> str:
        """Hash a token the way it is stored."""
        return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()

    @classmethod
    def issue(cls, *, user, name: str = "") -> tuple[AuthToken, str]:
        """Create a token for the user and return it with its secret key."""
        key = secrets.token_urlsafe(32)
        token = cls.objects.create(
            user=user, key_hash=cls.hash_key(key), prefix=key[:8], name=name
        )
        return token, key


class UserSettings(models.Model):
    """A person's privacy and notification choices; no row means every default."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="chat_settings",
    )
    show_presence = models.BooleanField(default=True)
    send_read_receipts = models.BooleanField(default=True)
    push = models.BooleanField(default=True)
    email = models.BooleanField(default=True)
    email_delay_minutes = models.PositiveSmallIntegerField(default=10)
    previews = models.BooleanField(default=True)
    # The language of what reaches the person away from the pages (emails, pushes): the one
    # they chose in the settings, else their browser's at their last login or sign-up.
    language = models.CharField(max_length=16, blank=True, default="", db_default="")
    language_chosen = models.BooleanField(default=False, db_default=False)

    def __str__(self) -> str:
        return f"settings of {self.user}"


class Block(models.Model):
    """One user blocking another: no direct messages, presence, typing or receipts between them."""

    blocker = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="blocks_made"
    )
    blocked = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="blocks_received"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["blocker", "blocked"], name="one_block_per_pair"),
            models.CheckConstraint(
                condition=~models.Q(blocker=models.F("blocked")), name="no_self_block"
            ),
        ]
        indexes = [models.Index(fields=["blocked", "blocker"])]

    def __str__(self) -> str:
        return f"{self.blocker} blocks {self.blocked}"


class PushSubscription(models.Model):
    """A browser's Web Push subscription (RFC 8030): where to post a person's pushes."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="push_subscriptions"
    )
    # The push service's URL for this browser; the server posts to it, so it is checked
    # (messaging/domain/push_subscriptions.py) before it is kept and again before each post.
    endpoint = models.CharField(max_length=1024, unique=True)
    # The browser's P-256 public key and auth secret (base64url), to encrypt for it.
    p256dh = models.CharField(max_length=128)
    auth = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    last_success_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"push subscription #{self.pk} of {self.user}"


class PushShown(models.Model):
    """A conversation's notification a subscription was sent, until the person reads it."""

    subscription = models.ForeignKey(
        PushSubscription, on_delete=models.CASCADE, related_name="shown"
    )
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="+")
    # The newest message pushed: read up to it, the notification is closed (a push too).
    message_id = models.BigIntegerField()
    pushed_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "conversation"], name="one_shown_per_conversation"
            )
        ]

    def __str__(self) -> str:
        return f"#{self.message_id} shown on {self.subscription_id}"


class VerifiedEmail(models.Model):
    """The address a person proved is theirs (by a link sent to it).

    The account's address is `User.email`; emails go to it only while it is the address
    verified here, so changing it (anywhere, the admin too) needs a new verification.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="verified_email",
    )
    address = models.EmailField()
    verified_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.address} verified"
