"""JSON API: the server's push key, and this browser's Web Push subscription."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse

from messaging.domain.push_subscriptions import (
    InvalidSubscription,
    subscription_delete,
    subscription_save,
)
from messaging.jobs.vapid import public_key
from messaging.web.http import ApiError, api, bad_request, json_body


@api("GET", rate="read")
def push_key(request: HttpRequest) -> JsonResponse:
    """Answer the VAPID public key browsers subscribe with (503 when push is not set up)."""
    key = public_key()
    if key is None:
        raise ApiError(503, "Web Push is not set up on this server (no VAPID key)")
    return JsonResponse({"public_key": key})


@api("POST", "DELETE", rate="write")
def push_subscriptions(request: HttpRequest) -> HttpResponse:
    """Keep this browser's subscription (201, or 200 when known), or forget it (204)."""
    data = json_body(request)
    try:
        if request.method == "DELETE":
            subscription_delete(user=request.user, endpoint=data.get("endpoint"))
            return HttpResponse(status=204)
        subscription, created = subscription_save(user=request.user, data=data)
    except InvalidSubscription as invalid:
        raise bad_request(f"invalid subscription: {invalid}", invalid.errors) from None
    return JsonResponse(
        {"endpoint": subscription.endpoint, "created_at": subscription.created_at.isoformat()},
        status=201 if created else 200,
    )
