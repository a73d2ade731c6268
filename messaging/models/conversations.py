"""Conversations, their members and how far each has read, and each person's change counter."""

from __future__ import annotations

from django.conf import settings
from django.db import models


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
        indexes = [
            # Someone's conversations' activity from the index alone (PostgreSQL): the inbox
            # sorts the person's conversations by it before it reads a page of them.
            models.Index(
                fields=["id"], include=["last_activity_at"], name="conversation_activity_idx"
            )
        ]

    def __str__(self) -> str:
        return self.title or f"{self.kind} #{self.pk}"

    @staticmethod
    def direct_key_for(first_user_id: int, second_user_id: int) -> str:
        """Name the pair of users independently of their order."""
        low, high = sorted((first_user_id, second_user_id))
        return f"{low}:{high}"


class Membership(models.Model):
    """A user's place in a conversation, with how far they have read."""

    # No index of their own: one_membership leads with the conversation, and
    # memberships_of_user with the user.
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="memberships", db_index=False
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="memberships",
        db_index=False,
    )
    # Id of the last message this member has read (0: none); it never moves back.
    last_read_message_id = models.BigIntegerField(default=0)
    # Set once the member wrote in the conversation or created it: only from then on do the
    # other members see their presence, typing and reading (PROTOCOL.md, Privacy). A
    # stranger who opens a conversation with someone learns nothing until they answer.
    visible_to_members = models.BooleanField(default=False, db_default=False)
    joined_at = models.DateTimeField(auto_now_add=True)
    # Muted: no sound, push or email for this conversation, except for mentions of the
    # member; unread messages still count.
    muted = models.BooleanField(default=False, db_default=False)
    # Id of the newest message a missed-message email told the member of (0: none): no
    # email tells of a message at or below it again.
    emailed_up_to = models.BigIntegerField(default=0, db_default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["conversation", "user"], name="one_membership")
        ]
        indexes = [
            # With whether the member is shown (PostgreSQL): who sees whom (the privacy
            # rule, at every handshake and presence change) is then read from the index
            # alone, 2,000 entries for each heavy user online.
            models.Index(
                fields=["user", "conversation"],
                include=["visible_to_members"],
                name="memberships_of_user",
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.conversation}"


class ChangeStream(models.Model):
    """A user's change counter: the largest `seq` of any change to their conversations.

    Every change locks the stream rows of all members (in user-id order) before drawing
    its stamp, so one user's stamps commit in increasing order on every database.

    A stream's last stamp is the largest `seq` of the user's conversations while they
    are still in `last_conversation_id` and its change holds that stamp (streams_last):
    a handshake then reads one row, not the newest stamp of each of their conversations.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="change_stream",
    )
    last_seq = models.BigIntegerField(default=0)
    # Not a foreign key: a conversation's removal must not wait on thousands of streams,
    # and a stale id only sends the reader to the long way (selectors.last_seqs_of).
    last_conversation_id = models.BigIntegerField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.user} @ {self.last_seq}"
