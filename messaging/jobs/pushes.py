"""What a push says, and what its push service's answer changes.

A push job carries items: {"s": subscription id, "m": message id} tells of a message,
{"s": ..., "c": conversation id, "r": read up to} closes a conversation's notification.
The payload is built when the job runs, from the database as it is then: a message
deleted meanwhile is not pushed, and the person's `previews` setting of that moment decides
whether the text goes in it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone, translation
from django.utils.translation import gettext, ngettext

from messaging import metrics
from messaging.domain.languages import languages_of
from messaging.jobs.push_client import Outcome, Push
from messaging.models import (
    Conversation,
    Membership,
    Mention,
    Message,
    PushShown,
    PushSubscription,
    UserSettings,
)
from messaging.protocol import iso_utc

log = logging.getLogger(__name__)

# Code points of a message's text a push carries: a notification shows a few lines, and a
# push holds at most 4 KB once encrypted.
PREVIEW_CHARS = 300
# Members named in a group's title when it has none.
TITLE_NAMES = 3


def tag_of(conversation_id: int) -> str:
    """Name a conversation's notification: a newer one replaces it."""
    return f"conversation-{conversation_id}"


def clip(text: str, limit: int) -> str:
    """Cut a text to at most `limit` code points, marking the cut."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _group_name(conversation: Conversation, names: list[str], reader_name: str) -> str:
    if conversation.title:
        return conversation.title
    others = [name for name in names if name != reader_name]
    shown = ", ".join(others[:TITLE_NAMES])
    extra = len(others) - TITLE_NAMES
    if extra <= 0:
        return shown
    more = ngettext("%(names)s and %(count)s more", "%(names)s and %(count)s more", extra)
    return more % {"names": shown, "count": extra}


def message_payload(
    *,
    message: Message,
    conversation: Conversation,
    member_names: list[str],
    reader_name: str,
    previews: bool,
    mentioned: bool,
) -> dict[str, Any]:
    """Say what a person's notification of a message shows, in the active language: with
    `previews` off, the conversation and no text."""
    sender = message.sender.username
    direct = conversation.kind == Conversation.Kind.DIRECT
    if previews:
        group = "" if direct else _group_name(conversation, member_names, reader_name)
        title = (
            sender
            if direct
            else gettext("%(name)s in %(group)s") % {"name": sender, "group": group}
        )
        body = clip(message.body, PREVIEW_CHARS) or gettext("Sent an attachment")
    else:
        title = sender if direct else _group_name(conversation, member_names, reader_name)
        body = gettext("Mentioned you") if mentioned else gettext("New message")
    return {
        "type": "message",
        "conversation": conversation.pk,
        "message": message.pk,
        "title": title,
        "body": body,
        "tag": tag_of(conversation.pk),
        "url": f"/c/{conversation.pk}/",
        "mention": mentioned,
        "sent_at": iso_utc(message.created_at),
    }


def read_payload(*, conversation_id: int, up_to: int) -> dict[str, Any]:
    """Say that a conversation was read up to a message: its notification closes."""
    return {
        "type": "read",
        "conversation": conversation_id,
        "up_to": up_to,
        "tag": tag_of(conversation_id),
    }


def _encoded(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def prepare(items: Sequence[dict[str, Any]]) -> list[Push]:
    """Build the pushes of a job's items; items whose subscription or message is gone drop."""
    try:
        return _prepare(items)
    finally:
        # Called on a pool thread of the push loop: give the connection back.
        connection.close()


def _prepare(items: Sequence[dict[str, Any]]) -> list[Push]:
    subscriptions = PushSubscription.objects.select_related("user").in_bulk(
        {item["s"] for item in items}
    )
    message_ids = {item["m"] for item in items if "m" in item}
    messages = Message.objects.select_related("sender", "conversation").in_bulk(message_ids)
    conversation_ids = {message.conversation_id for message in messages.values()}
    names: dict[int, list[str]] = {}
    for conversation_id, username in (
        Membership.objects.filter(conversation_id__in=conversation_ids)
        .order_by("user__username")
        .values_list("conversation_id", "user__username")
    ):
        names.setdefault(conversation_id, []).append(username)
    user_ids = {subscription.user_id for subscription in subscriptions.values()}
    no_previews = set(
        UserSettings.objects.filter(user_id__in=user_ids, previews=False).values_list(
            "user_id", flat=True
        )
    )
    mentioned = set(
        Mention.objects.filter(message_id__in=message_ids, user_id__in=user_ids).values_list(
            "message_id", "user_id"
        )
    )
    languages = languages_of(user_ids)
    ttl = str(settings.CHAT_PUSH_TTL_SECONDS)
    pushes = []
    for item in items:
        subscription = subscriptions.get(item["s"])
        if subscription is None or not subscription.user.is_active:
            continue
        if "m" in item:
            message = messages.get(item["m"])
            if message is None or message.deleted_at is not None:
                continue
            with translation.override(languages[subscription.user_id]):
                payload = message_payload(
                    message=message,
                    conversation=message.conversation,
                    member_names=names.get(message.conversation_id, []),
                    reader_name=subscription.user.username,
                    previews=subscription.user_id not in no_previews,
                    mentioned=(message.pk, subscription.user_id) in mentioned,
                )
            urgency, conversation_id = "high", message.conversation_id
            context = {"created_at": message.created_at}
        else:
            payload = read_payload(conversation_id=item["c"], up_to=item["r"])
            urgency, conversation_id, context = "normal", item["c"], {}
        pushes.append(
            Push(
                endpoint=subscription.endpoint,
                p256dh=subscription.p256dh,
                auth=subscription.auth,
                payload=_encoded(payload),
                headers={
                    "TTL": ttl,
                    "Urgency": urgency,
                    # A push still waiting at the push service for an offline device is
                    # replaced by a newer one of the same conversation.
                    "Topic": f"c{conversation_id}",
                },
                context={**context, "item": dict(item), "user_id": subscription.user_id},
            )
        )
    return pushes


def record(pushes: Sequence[Push], outcomes: Sequence[Outcome]) -> list[dict[str, Any]]:
    """Apply the push services' answers; return the items to try again."""
    try:
        return _record(pushes, outcomes)
    finally:
        connection.close()


def _record(pushes: Sequence[Push], outcomes: Sequence[Outcome]) -> list[dict[str, Any]]:
    now = timezone.now()
    delivered: list[dict[str, Any]] = []
    gone: set[int] = set()
    retry: list[dict[str, Any]] = []
    for push, outcome in zip(pushes, outcomes, strict=True):
        item = push.context["item"]
        if outcome.delivered:
            delivered.append(item)
            created_at: datetime | None = push.context.get("created_at")
            if created_at is not None:
                metrics.PUSH_LATENCY.observe(max(0.0, (now - created_at).total_seconds()))
            metrics.PUSHES.labels(outcome="delivered").inc()
        elif outcome.gone:
            gone.add(item["s"])
            metrics.PUSHES.labels(outcome="gone").inc()
        elif outcome.worth_retrying:
            retry.append(item)
            metrics.PUSHES.labels(outcome="retry").inc()
        else:
            metrics.PUSHES.labels(outcome="failed").inc()
            log.warning(
                "push to subscription %s failed for good: %s",
                item["s"],
                outcome.problem or f"HTTP {outcome.status}",
            )
    if gone:
        PushSubscription.objects.filter(pk__in=gone).delete()
    succeeded = {item["s"] for item in delivered} - gone
    if succeeded:
        PushSubscription.objects.filter(pk__in=succeeded).update(last_success_at=now)
    _note_shown([item for item in delivered if "m" in item and item["s"] not in gone])
    return retry


def _note_shown(items: list[dict[str, Any]]) -> None:
    """Remember the newest message each subscription was shown per conversation."""
    if not items:
        return
    conversation_of = dict(
        Message.objects.filter(pk__in={item["m"] for item in items}).values_list(
            "pk", "conversation_id"
        )
    )
    newest: dict[tuple[int, int], int] = {}
    for item in items:
        if item["m"] not in conversation_of:
            continue  # Purged since.
        key = (item["s"], conversation_of[item["m"]])
        newest[key] = max(newest.get(key, 0), item["m"])
    existing = {
        (row.subscription_id, row.conversation_id): row
        for row in PushShown.objects.filter(
            subscription_id__in={s for s, _ in newest},
            conversation_id__in={c for _, c in newest},
        )
    }
    PushShown.objects.bulk_create(
        [
            PushShown(subscription_id=s, conversation_id=c, message_id=m)
            for (s, c), m in newest.items()
            if (s, c) not in existing
        ],
        ignore_conflicts=True,
    )
    for key, message_id in newest.items():
        row = existing.get(key)
        if row is not None and row.message_id < message_id:
            PushShown.objects.filter(pk=row.pk, message_id__lt=message_id).update(
                message_id=message_id
            )
