"""JSON endpoints: authentication by session (with CSRF) or bearer token, and errors."""

from __future__ import annotations

import functools
import logging
from typing import Any

from django.db import DataError, InterfaceError, OperationalError
from django.http import HttpRequest, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.csrf import csrf_exempt

from messaging.protocol import ChatError, ErrorCode, decode_json, has_bad_text
from messaging.tokens import bearer_key, user_for_token

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
    """Return the request's JSON object, or raise a 400 saying why it is not one."""
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


def api(*methods: str, auth: bool = True):
    """Make a view a JSON endpoint that accepts the given methods.

    With `auth`, the caller is the bearer token's user, or the session's user (unsafe
    methods then need the CSRF token); without credentials the answer is 401.
    """

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
        response["Retry-After"] = str(max(1, round(error.retry_after)))
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
    if request.method not in ("GET", "HEAD", "OPTIONS"):
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


def lockout_response(request: HttpRequest, original_response=None, credentials=None):
    """Answer a login or token request that django-axes locked out: 429 with a reason."""
    from django.conf import settings
    from django.shortcuts import render

    retry_after = int(settings.AXES_COOLOFF_TIME * 3600)
    detail = "too many failed logins; try again later"
    if request.path.startswith("/api/"):
        response = JsonResponse({"detail": detail, "retry_after": retry_after}, status=429)
    else:
        response = render(request, "messaging/problem.html", {"problem": detail}, status=429)
    response["Retry-After"] = str(retry_after)
    return response
