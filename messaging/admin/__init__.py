"""Moderation through Django admin; hiding goes through the same service as a delete.

Staff moderate by hiding messages and deactivating users, each action only with the
matching change permission. Nothing here lets staff read themselves into a conversation,
act as someone else (a token's owner, a password), or edit rows the services keep
consistent (messages, conversations, memberships, tokens, presence): those are read-only.
"""

from messaging.admin import chat_messages, conversations, reports, users

__all__ = ["chat_messages", "conversations", "reports", "users"]
