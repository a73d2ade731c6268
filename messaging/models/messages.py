"""Messages and their parts: reactions, mentions and the files they carry."""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets

from django.conf import settings
from django.db import models

from messaging.models.conversations import Conversation

# Keeps the sent_hash key apart from every other use of SECRET_KEY.
SENT_HASH_SALT = "messaging.Message.sent_hash"


@functools.lru_cache(maxsize=4)
def _sent_hash_key(secret: str) -> bytes:
    return hashlib.sha256((SENT_HASH_SALT + secret).encode("utf-8")).digest()


class Message(models.Model):
    """One message; deleted ones keep their row and id."""

    # No index of their own for these two: history_idx and changes_idx begin with the
    # conversation, one_message_per_client_id with the sender, and every index is one more
    # write for each message sent.
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages", db_index=False
    )
    sender = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="messages_sent",
        db_index=False,
    )

    class Kind(models.TextChoices):
        TEXT = "text"
        # A line about the conversation itself ("alice added carol"), written by the server.
        SYSTEM = "system"

    kind = models.CharField(max_length=6, choices=Kind.choices, default=Kind.TEXT)
    body = models.TextField()
    client_id = models.CharField(max_length=64)
    # Keyed hash of the body as first sent (hash_body): a retry is compared with it, not with
    # an edit. Emptied when the message is deleted, hidden or purged.
    sent_hash = models.CharField(max_length=64, blank=True, editable=False)
    # Change stamp: redrawn on create, edit and delete; the sync cursor.
    seq = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    edited_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    # Staff member who hid the message, when a moderator rather than the sender deleted it.
    # Indexed only where set (hidden_by_idx): a staff account's deletion finds its few.
    hidden_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    # The message this one answers, in the same conversation. No database constraint: a
    # reply outlives the purge of what it quotes, and then shows it deleted. Never
    # looked up by it, so no index.
    reply_to = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
        db_index=False,
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["sender", "client_id"], name="one_message_per_client_id"
            )
        ]
        indexes = [
            models.Index(fields=["conversation", "id"], name="history_idx"),
            # With the id (PostgreSQL): a sync page's ids come from the index alone.
            models.Index(fields=["conversation", "seq"], include=["id"], name="changes_idx"),
            models.Index(
                fields=["hidden_by"],
                condition=models.Q(hidden_by__isnull=False),
                name="hidden_by_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} by {self.sender_id} in {self.conversation_id}"

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None

    @staticmethod
    def hash_body(body: str) -> str:
        """Hash a body the way sent_hash stores it.

        The hash is keyed with SECRET_KEY (HMAC-SHA256), so a database dump without the
        secret cannot be used to guess short messages back from it.
        """
        # As django.utils.crypto.salted_hmac(SENT_HASH_SALT, body, algorithm="sha256"),
        # with its key derived once per secret instead of on every send.
        key = _sent_hash_key(settings.SECRET_KEY)
        return hmac.new(key, body.encode("utf-8"), hashlib.sha256).hexdigest()


class Reaction(models.Model):
    """One person's emoji on a message."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="reactions")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    emoji = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["message", "user", "emoji"], name="one_reaction")
        ]

    def __str__(self) -> str:
        return f"{self.emoji} by {self.user_id} on {self.message_id}"


class Mention(models.Model):
    """A member named as @username in a group message."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="mentions")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    # The message's, kept here so that the inbox counts each conversation's unread
    # mentions from this table's index alone.
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["message", "user"], name="one_mention_per_message")
        ]
        indexes = [
            models.Index(fields=["user", "conversation", "message"], name="unread_mentions_idx")
        ]

    def __str__(self) -> str:
        return f"@{self.user_id} in {self.message_id}"


def new_upload_id() -> str:
    """Draw an upload's id: random, so that one cannot be guessed from another."""
    return secrets.token_urlsafe(16)


class Upload(models.Model):
    """A file a user sent up: kept unsent until a message carries it, then part of it.

    The bytes live in the storage (STORAGES["default"]: MEDIA_ROOT, or S3) under a random
    name; `name` is only what the sender called the file, shown to the members.
    """

    id = models.CharField(max_length=32, primary_key=True, default=new_upload_id, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="uploads"
    )
    message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.CASCADE, related_name="attachments"
    )
    # Its place among its message's files, from 0, in the order the send named them.
    position = models.PositiveSmallIntegerField(default=0)
    file = models.FileField(max_length=200)
    thumbnail = models.FileField(max_length=200, blank=True)
    name = models.CharField(max_length=200)
    size = models.PositiveBigIntegerField()
    content_type = models.CharField(max_length=100)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    # Shown in the page rather than downloaded: only pictures the server decoded and
    # encoded again itself, so that nothing the sender wrote reaches a browser as is.
    inline = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            # The clean-up of uploads never sent reads only these.
            models.Index(
                fields=["created_at"],
                condition=models.Q(message__isnull=True),
                name="unsent_uploads_idx",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.pk}) by {self.owner_id}"
