"""JSON endpoints: authentication by session (with CSRF) or bearer token, rate limits per
user or per address, and errors."""

from __future__ import annotations

import functools
import ipaddress
import logging
import math
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import DataError, InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt

from messaging.domain.ratelimit import limiter, parse_rules, rate_limited
from messaging.domain.tokens import bearer_key, user_for_token
from messaging.protocol import ChatError, ErrorCode, decode_json, has_bad_text

log = logging.getLogger(__name__)

STATUS_FOR_CODE = {
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.CANNOT_SEND: 403,
    ErrorCode.CONFLICT: 409,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.UNAVAILABLE: 503,
}


class ApiError(Exception):
    """An HTTP error answered as `{"detail": ..., "errors"?: ...}`."""

    def __init__(self, status: int, detail: str, errors: dict | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors

    def response(self) -> JsonResponse:
        body: dict[str, Any] = {"detail": self.detail}
        if self.status == 400:
            body["errors"] = self.errors or {}
        return JsonResponse(body, status=self.status)


def bad_request(detail: str, errors: dict | None = None) -> ApiError:
    """Build a 400 with field errors."""
    return ApiError(400, detail, errors or {})


def json_body(request: HttpRequest) -> dict[str, Any]:
    """Return the request's JSON object, or raise a 400 (415) saying why it is not one.

    The body must say it is `application/json`: a page of another site can make a browser
    POST `text/plain` anywhere without asking, but not JSON.
    """
    if request.body and request.content_type != "application/json":
        raise ApiError(415, "send the body as JSON, with Content-Type: application/json")
    try:
        text = request.body.decode("utf-8")
        document = decode_json(text) if text.strip() else {}
    except (UnicodeDecodeError, ChatError):
        raise bad_request("the body must be a JSON object") from None
    if not isinstance(document, dict):
        raise bad_request("the body must be a JSON object")
    if has_bad_text(document):
        raise bad_request("text may not hold NUL or unpaired surrogates")
    return document


def _csrf_failure(request: HttpRequest):
    check = CsrfViewMiddleware(lambda req: None)
    check.process_request(request)
    return check.process_view(request, None, (), {})


# The rule of each kind of endpoint, by the name given to `api(rate=...)`: the setting that
# holds it, counted per user (per client address for endpoints without authentication).
RATE_SETTINGS = {
    "read": "CHAT_API_READ_RATE",
    "search": "CHAT_SEARCH_RATE",
    "user_lookup": "CHAT_USER_LOOKUP_RATE",
    "group_change": "CHAT_GROUP_CHANGE_RATE",
    "write": "CHAT_API_WRITE_RATE",
    "login": "CHAT_LOGIN_RATE",
}
# Endpoints anyone may call are also counted for all addresses together: addresses are
# cheap to come by, and these hash a password on every call.
TOTAL_RATE_SETTINGS = {"login": "CHAT_LOGIN_TOTAL_RATE"}

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def _rate_names(
    methods: tuple[str, ...], rate: str | dict[str, str] | None, auth: bool
) -> dict[str, str]:
    """Return the rate rule of each method, checking that every name has a setting."""
    if rate is None:
        rate = (
            "login" if not auth else {m: "read" if m in SAFE_METHODS else "write" for m in methods}
        )
    names = rate if isinstance(rate, dict) else {method: rate for method in methods}
    for method in methods:
        name = names.get(method)
        if name not in RATE_SETTINGS:
            raise ValueError(f"{method}: name a rate rule of {sorted(RATE_SETTINGS)}")
        if not auth and name not in TOTAL_RATE_SETTINGS:
            raise ValueError(f"{method}: an endpoint without authentication needs a total rule")
    return names


def api(*methods: str, auth: bool = True, rate: str | dict[str, str] | None = None):
    """Make a view a JSON endpoint that accepts the given methods.

    With `auth`, the caller is the bearer token's user, or the session's user (unsafe
    methods then need the CSRF token); without credentials the answer is 401.

    `rate` names the endpoint's rule in RATE_SETTINGS (or one per method, as a dict): each
    call counts one hit per user, or without `auth` per client address and in total, before
    the view runs; past the rule the answer is 429 with Retry-After. Left out, reads count
    as "read", writes as "write", and endpoints without `auth` as "login".
    """
    rate_of_method = _rate_names(methods, rate, auth)

    def decorate(view):
        @csrf_exempt
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs):
            if request.method not in methods:
                return JsonResponse(
                    {"detail": f"{request.method} is not allowed here"}, status=405
                )
            try:
                if auth:
                    _authenticate(request)
                count_hit(request, rate=rate_of_method[request.method], per_user=auth)
                return view(request, *args, **kwargs)
            except ApiError as error:
                return error.response()
            except ChatError as error:
                return chat_error_response(error)
            except DataError:
                # Text the database cannot hold (a NUL in a URL, say): the caller's mistake.
                return bad_request("the request holds text that cannot be stored").response()
            except (OperationalError, InterfaceError):
                log.warning("database unavailable for %s", request.path)
                return JsonResponse({"detail": "the database did not answer"}, status=503)

        return wrapper

    return decorate


def count_hit(request: HttpRequest, *, rate: str, per_user: bool) -> None:
    """Count one request against its rule; raise `rate_limited` when it is over.

    Per user when `per_user`, else per client address and then for all addresses together;
    a request one address is refused does not spend the total that the others share.
    """
    async_to_sync(_count_hit)(
        rate=rate, subject=request.user.pk if per_user else client_key(request), total=not per_user
    )


async def _count_hit(*, rate: str, subject: int | str, total: bool) -> None:
    rules = parse_rules(getattr(settings, RATE_SETTINGS[rate]))
    wait = await limiter().retry_after(f"http:{rate}", subject, rules)
    if wait is not None:
        raise rate_limited(rate.replace("_", " "), wait)
    if total:
        rules = parse_rules(getattr(settings, TOTAL_RATE_SETTINGS[rate]))
        wait = await limiter().retry_after(f"http:{rate}:total", "all", rules)
        if wait is not None:
            raise ChatError(
                ErrorCode.RATE_LIMITED,
                f"too many {rate} requests to this server just now; wait {wait} s",
                retry_after=wait,
            )


def limit_posts(view, *, rate: str = "login"):
    """Count every POST to a page (a sign-in form) per client address and in total."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.method == "POST":
            refusal = page_rate_refusal(request, rate=rate)
            if refusal is not None:
                return refusal
        return view(request, *args, **kwargs)

    return wrapper


def page_rate_refusal(request: HttpRequest, *, rate: str = "login") -> HttpResponse | None:
    """Count a page's POST per client address and in total; the 429 page when over."""
    try:
        count_hit(request, rate=rate, per_user=False)
    except ChatError as error:
        return too_many_response(request, error.detail, error.retry_after or 1)
    return None


def too_many_response(request: HttpRequest, detail: str, retry_after: float) -> HttpResponse:
    """Answer 429 with Retry-After: JSON for the API, the problem page for pages."""
    if request.path.startswith("/api/"):
        response = JsonResponse({"detail": detail, "retry_after": retry_after}, status=429)
    else:
        response = render(request, "messaging/problem.html", {"problem": detail}, status=429)
    response["Retry-After"] = _retry_after_header(retry_after)
    return response


def _retry_after_header(seconds: float) -> str:
    # Whole seconds, rounded up: a client that waits exactly this long is let in.
    return str(max(1, math.ceil(seconds)))


def chat_error_response(error: ChatError, field: str | None = None) -> JsonResponse:
    """Answer a refusal of the chat's rules with its HTTP status and code."""
    status = STATUS_FOR_CODE.get(error.code, 400)
    body: dict[str, Any] = {"detail": error.detail, "code": error.code}
    if status == 400:
        body["errors"] = {field: [error.detail]} if field else {}
    if error.retry_after is not None:
        body["retry_after"] = error.retry_after
    response = JsonResponse(body, status=status)
    if error.retry_after is not None:
        response["Retry-After"] = _retry_after_header(error.retry_after)
    return response


def _authenticate(request: HttpRequest) -> None:
    header = request.headers.get("Authorization")
    if header is not None:
        key = bearer_key(header)
        user = user_for_token(key) if key else None
        if user is None:
            raise ApiError(401, "invalid or revoked token")
        request.user = user
        return
    if not request.user.is_authenticated:
        raise ApiError(401, "authentication required: a session or a bearer token")
    if request.method not in SAFE_METHODS:
        failure = _csrf_failure(request)
        if failure is not None:
            raise ApiError(403, "CSRF token missing or incorrect")


def form_errors(form) -> dict[str, list[str]]:
    """Turn a Django form's errors into the API's field errors."""
    return {
        field: [str(message) for message in messages] for field, messages in form.errors.items()
    }


def client_address(request: HttpRequest) -> str:
    """Return the caller's address (daphne --proxy-headers puts the proxy's client here)."""
    return request.META.get("REMOTE_ADDR") or "unknown"


def client_key(request: HttpRequest) -> str:
    """Return what per-address limits count: the IPv4 address, or the IPv6 /64 network.

    One IPv6 subscriber is given a whole /64 (at least) and can use a new address of it for
    every request, so counting addresses there would count nothing.
    """
    address = client_address(request)
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(parsed) >> 64 << 64, 64)))
    return str(parsed)


def lockout_response(request: HttpRequest, original_response=None, credentials=None):
    """Answer a login or token request that django-axes locked out: 429 with a reason."""
    retry_after = int(settings.AXES_COOLOFF_TIME * 3600)
    return too_many_response(request, "too many failed logins; try again later", retry_after)
