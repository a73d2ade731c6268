"""The chat's data: conversations, memberships, messages, change stamps, tokens, presence."""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets

from django.conf import settings
from django.db import models

# Keeps the sent_hash key apart from every other use of SECRET_KEY.
SENT_HASH_SALT = "messaging.Message.sent_hash"


@functools.lru_cache(maxsize=4)
def _sent_hash_key(secret: str) -> bytes:
    return hashlib.sha256((SENT_HASH_SALT + secret).encode("utf-8")).digest()


class Conversation(models.Model):
    """A place where two (direct) or more (group) people talk."""

    class Kind(models.TextChoices):
        DIRECT = "direct"
        GROUP = "group"

    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.DIRECT)
    title = models.CharField(max_length=100, blank=True)
    # "<smaller user id>:<larger user id>" for direct conversations, null for groups: the
    # unique constraint keeps one direct conversation per pair, even under races.
    direct_key = models.CharField(max_length=41, null=True, blank=True, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # The last message's time, or the creation time: the inbox order.
    last_activity_at = models.DateTimeField(db_index=True)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="conversations"
    )

    class Meta:
        ordering = ["-last_activity_at"]

    def __str__(self) -> str:
        return self.title or f"{self.kind} #{self.pk}"

    @staticmethod
    def direct_key_for(first_user_id: int, second_user_id: int) -> str:
        """Name the pair of users independently of their order."""
        low, high = sorted((first_user_id, second_user_id))
        return f"{low}:{high}"


class Membership(models.Model):
    """A user's place in a conversation, with how far they have read."""

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="memberships"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    # Id of the last message this member has read (0: none); it never moves back.
    last_read_message_id = models.BigIntegerField(default=0)
    # Set once the member wrote in the conversation or created it: only from then on do the
    # other members see their presence, typing and reading (PROTOCOL.md, Privacy). A
    # stranger who opens a conversation with someone learns nothing until they answer.
    visible_to_members = models.BooleanField(default=False, db_default=False)
    joined_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["conversation", "user"], name="one_membership")
        ]
        indexes = [models.Index(fields=["user", "conversation"])]

    def __str__(self) -> str:
        return f"{self.user} in {self.conversation}"


class ChangeStream(models.Model):
    """A user's change counter: the largest `seq` of any change to their conversations.

    Every change locks the stream rows of all members (in user-id order) before drawing
    its stamp, so one user's stamps commit in increasing order on every database.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="change_stream",
    )
    last_seq = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.user} @ {self.last_seq}"


class Message(models.Model):
    """One message; deleted ones keep their row and id."""

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    sender = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="messages_sent"
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
    hidden_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["sender", "client_id"], name="one_message_per_client_id"
            )
        ]
        indexes = [
            models.Index(fields=["conversation", "id"], name="history_idx"),
            models.Index(fields=["conversation", "seq"], name="changes_idx"),
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

    def __str__(self) -> str:
        return f"settings of {self.user}"


class PresenceProcess(models.Model):
    """A server process's socket registry; its heartbeat keeps all of its sockets alive."""

    id = models.CharField(max_length=64, primary_key=True)
    heartbeat_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"process {self.id}"


class SocketPresence(models.Model):
    """An open socket: live while the process holding it keeps its heartbeat fresh."""

    channel_name = models.CharField(max_length=200, primary_key=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sockets"
    )
    # The PresenceProcess holding the socket (no foreign key: a row of a process that is
    # gone is what the sweep looks for).
    process = models.CharField(max_length=64, db_index=True)
    connected_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.user} on {self.channel_name}"


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
