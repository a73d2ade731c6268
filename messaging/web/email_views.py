"""Email addresses: the API to set one, the link that verifies it, the unsubscribe page."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from messaging.domain.email_addresses import (
    InvalidAddress,
    address_set,
    address_verify,
    is_verified,
    unsubscribe,
    unsubscribe_holder,
)
from messaging.jobs.queue import enqueue_many
from messaging.jobs.tasks import email_verification
from messaging.web.http import api, bad_request, json_body, page_rate_refusal

User = get_user_model()


def email_data(user) -> dict:
    """Show a person's address as the API does."""
    return {"email": user.email, "verified": is_verified(user=user)}


def verification_send(user) -> None:
    """Enqueue the email with the link that verifies the user's address."""
    enqueue_many(email_verification, [{"user_id": user.pk, "address": user.email}])


def set_address(user, address: object) -> None:
    """Set the user's address and send the link to verify it if needed (raise InvalidAddress)."""
    if address_set(user=user, address=address):
        verification_send(user)


@api("GET", "PUT", rate={"GET": "read", "PUT": "write"})
def my_email(request: HttpRequest) -> JsonResponse:
    """Show the caller's address, or set it ("" removes it): a new one is sent a link."""
    if request.method == "PUT":
        data = json_body(request)
        try:
            set_address(request.user, data.get("email"))
        except InvalidAddress as invalid:
            raise bad_request(f"invalid email: {invalid}", {"email": [str(invalid)]}) from None
    return JsonResponse(email_data(request.user))


@require_http_methods(["GET", "HEAD"])
def verify(request: HttpRequest, token: str) -> HttpResponse:
    """Verify the address a link was sent to."""
    user = address_verify(token)
    if user is None:
        return render(
            request,
            "messaging/email/link_page.html",
            {
                "title": _("This link does not work"),
                "text": _(
                    "It has expired, or it is for an address the account no longer "
                    "uses. Ask for a new link on your settings page."
                ),
            },
            status=400,
        )
    return render(
        request,
        "messaging/email/link_page.html",
        {
            "title": _("Your email address is confirmed"),
            "text": _("The chat may now email %(address)s about messages you miss.")
            % {"address": user.email},
        },
    )


@csrf_exempt
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe_page(request: HttpRequest, token: str) -> HttpResponse:
    """Offer to stop emails (GET), and stop them (POST: the button, or one click, RFC 8058).

    The signed link is the authority, no login: it names its user and their address and
    does nothing once the account has another address. A link checker's GET changes
    nothing.
    """
    if request.method == "POST":
        refusal = page_rate_refusal(request)
        if refusal is not None:
            return refusal
        user = unsubscribe(token)
        done = True
    else:
        user = unsubscribe_holder(token)
        done = False
    if user is None:
        return render(
            request,
            "messaging/email/link_page.html",
            {
                "title": _("This link does not work"),
                "text": _(
                    "It is for an address the account no longer uses. Change what the "
                    "chat emails you about on your settings page."
                ),
            },
            status=404,
        )
    return render(
        request, "messaging/email/unsubscribe.html", {"address": user.email, "done": done}
    )
