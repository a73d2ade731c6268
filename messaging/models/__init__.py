"""The chat's data: conversations, memberships, messages, change stamps, tokens, presence.

Each kind lives in a module of its own; every model is named here too, so that
`from messaging.models import Message` reads the same wherever a model moved.
"""

from messaging.models.accounts import (
    AuthToken,
    Block,
    PushShown,
    PushSubscription,
    UserSettings,
    VerifiedEmail,
)
from messaging.models.conversations import ChangeStream, Conversation, Membership
from messaging.models.messages import (
    SENT_HASH_SALT,
    Mention,
    Message,
    Reaction,
    Upload,
    new_upload_id,
)
from messaging.models.moderation import ModerationAction, Report
from messaging.models.presence import PresenceProcess, SocketPresence
from messaging.models.workers import JobClock, JobWorker

__all__ = [
    "SENT_HASH_SALT",
    "AuthToken",
    "Block",
    "ChangeStream",
    "Conversation",
    "JobClock",
    "JobWorker",
    "Membership",
    "Mention",
    "Message",
    "ModerationAction",
    "PresenceProcess",
    "PushShown",
    "PushSubscription",
    "Reaction",
    "Report",
    "SocketPresence",
    "Upload",
    "UserSettings",
    "VerifiedEmail",
    "new_upload_id",
]
