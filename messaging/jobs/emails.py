"""Emails: what a person missed in a conversation, and the link that verifies an address."""

from __future__ import annotations

import logging
from datetime import datetime

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext, ngettext

from messaging import metrics
from messaging.domain.blocks import cut_off_ids
from messaging.domain.email_addresses import (
    unsubscribe_token,
    verification_token,
    verified_address,
)
from messaging.domain.languages import language_of
from messaging.domain.user_settings import settings_for
from messaging.jobs.pushes import PREVIEW_CHARS, clip
from messaging.models import Conversation, Membership, Message

log = logging.getLogger(__name__)

# The newest messages an email quotes; it counts the others.
LAST_FEW = 5
# Members named in the subject of a group without a title.
SUBJECT_NAMES = 3


def site_url(path: str) -> str:
    """Return an absolute URL of the site (CHAT_SITE_URL, else its first host name)."""
    base = settings.CHAT_SITE_URL.rstrip("/")
    if not base:
        hosts = [host for host in settings.ALLOWED_HOSTS if host and "*" not in host]
        base = f"https://{hosts[0].lstrip('.')}" if hosts else "http://localhost"
    return base + path


def _headers(*, user_id: int, address: str) -> tuple[dict[str, str], str]:
    """Return the headers that unsubscribe in one click (RFC 8058) and mark the email as
    sent by a machine, and the unsubscribe link."""
    url = site_url(
        reverse("email-unsubscribe", args=[unsubscribe_token(user_id=user_id, address=address)])
    )
    return {
        "List-Unsubscribe": f"<{url}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "Auto-Submitted": "auto-generated",
        "X-Auto-Response-Suppress": "All",
    }, url


def _conversation_name(conversation: Conversation, reader_id: int) -> tuple[str, bool]:
    """Name a conversation for its reader, in the active language; tell whether it is direct."""
    others = list(
        Membership.objects.filter(conversation=conversation)
        .exclude(user_id=reader_id)
        .order_by("user__username")
        .values_list("user__username", flat=True)
    )
    if conversation.kind == Conversation.Kind.DIRECT:
        return (others[0] if others else gettext("someone")), True
    if conversation.title:
        return conversation.title, False
    shown = ", ".join(others[:SUBJECT_NAMES])
    extra = len(others) - SUBJECT_NAMES
    if extra <= 0:
        return shown, False
    more = ngettext("%(names)s and %(count)s more", "%(names)s and %(count)s more", extra)
    return more % {"names": shown, "count": extra}, False


def send_missed(*, membership_id: int, after: int, up_to: int, due_at: str) -> bool:
    """Email a person the messages they left unread in one conversation; tell whether sent.

    Nothing is sent if they read them meanwhile, turned emails off, or their address is no
    longer verified; messages of people on either side of a block with them are left out.
    """
    membership = (
        Membership.objects.select_related("user", "conversation").filter(pk=membership_id).first()
    )
    if membership is None or membership.last_read_message_id >= up_to:
        return False
    user = membership.user
    address = verified_address(user_id=user.pk)
    chosen = settings_for(user=user)
    if address is None or not chosen.email:
        return False
    unread = (
        Message.objects.filter(
            conversation_id=membership.conversation_id,
            pk__gt=max(after, membership.last_read_message_id),
            pk__lte=up_to,
            deleted_at__isnull=True,
            kind=Message.Kind.TEXT,
        )
        .exclude(sender_id=user.pk)
        .exclude(sender_id__in=cut_off_ids(user.pk))
    )
    count = unread.count()
    if not count:
        return False
    last_few = list(unread.select_related("sender").order_by("-pk")[:LAST_FEW])[::-1]
    # In the person's language, whatever the worker's: subject, names, body and dates.
    with translation.override(language_of(user.pk)):
        email = _missed_email(membership, address, count, last_few, previews=chosen.previews)
    email.send()
    metrics.EMAILS.labels(kind="missed_messages").inc()
    due: datetime | None = parse_datetime(due_at)
    if due is not None:
        metrics.EMAIL_LATENCY.observe(max(0.0, (timezone.now() - due).total_seconds()))
    return True


def _missed_email(
    membership: Membership, address: str, count: int, last_few: list[Message], *, previews: bool
) -> EmailMultiAlternatives:
    """Write the missed-messages email, in the active language."""
    user = membership.user
    headers, unsubscribe_url = _headers(user_id=user.pk, address=address)
    name, direct = _conversation_name(membership.conversation, user.pk)
    if direct:
        subject = ngettext(
            "%(count)s new message from %(name)s", "%(count)s new messages from %(name)s", count
        )
    else:
        subject = ngettext(
            "%(count)s new message in %(name)s", "%(count)s new messages in %(name)s", count
        )
    context = {
        "user": user,
        "name": name,
        "direct": direct,
        "count": count,
        "previews": previews,
        "messages": [
            {
                "sender": message.sender.username,
                "body": clip(message.body, PREVIEW_CHARS) or gettext("(an attachment)"),
                "created_at": message.created_at,
            }
            for message in last_few
        ],
        "more": count - len(last_few),
        "conversation_url": site_url(reverse("conversation", args=[membership.conversation_id])),
        "settings_url": site_url(reverse("settings")),
        "unsubscribe_url": unsubscribe_url,
    }
    email = EmailMultiAlternatives(
        subject=subject % {"count": count, "name": name},
        body=render_to_string("messaging/email/missed_messages.txt", context),
        to=[address],
        headers=headers,
    )
    email.attach_alternative(
        render_to_string("messaging/email/missed_messages.html", context), "text/html"
    )
    return email


def send_verification(*, user_id: int, address: str) -> bool:
    """Email the link that verifies an address, if it is still the person's."""
    user = get_user_model().objects.filter(pk=user_id, email=address, is_active=True).first()
    if user is None or not address:
        return False
    with translation.override(language_of(user_id)):
        _send_verification(user, address)
    metrics.EMAILS.labels(kind="verification").inc()
    return True


def _send_verification(user, address: str) -> None:
    """Write and send the link that verifies an address, in the active language."""
    token = verification_token(user_id=user.pk, address=address)
    context = {
        "user": user,
        "address": address,
        "verify_url": site_url(reverse("email-verify", args=[token])),
        "settings_url": site_url(reverse("settings")),
    }
    email = EmailMultiAlternatives(
        subject=gettext("Confirm your email address for the chat"),
        body=render_to_string("messaging/email/verify_address.txt", context),
        to=[address],
        headers={"Auto-Submitted": "auto-generated", "X-Auto-Response-Suppress": "All"},
    )
    email.attach_alternative(
        render_to_string("messaging/email/verify_address.html", context), "text/html"
    )
    email.send()
