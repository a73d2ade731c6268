"""JSON API: a person's own bearer tokens, listed, created and revoked."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext as _

from messaging.domain.tokens import TOKEN_NAME_MAX, token_create, token_revoke, tokens_of
from messaging.models import AuthToken
from messaging.protocol import iso_utc
from messaging.web.http import ApiError, api, bad_request, json_body


def token_name(data: dict[str, Any]) -> str:
    """Return the request's optional token `name`, or raise a 400 naming the field."""
    name = data.get("name", "")
    if name is None:
        return ""
    if not isinstance(name, str):
        raise bad_request("name must be a string", {"name": ["Must be a string."]})
    name = name.strip()
    if len(name) > TOKEN_NAME_MAX:
        raise bad_request(
            f"name is longer than {TOKEN_NAME_MAX} characters",
            {"name": [_("At most %(count)s characters.") % {"count": TOKEN_NAME_MAX}]},
        )
    return name


def token_data(token: AuthToken) -> dict[str, Any]:
    """Describe a token to its owner; never its secret."""
    return {
        "id": token.pk,
        "name": token.name,
        "prefix": token.prefix,
        "created_at": iso_utc(token.created_at),
        "last_used_at": iso_utc(token.last_used_at),
        "expires_at": iso_utc(token.expires_at),
    }


@api("GET", "POST", rate={"GET": "read", "POST": "write"})
def token_list(request: HttpRequest) -> JsonResponse:
    """List the caller's tokens, or issue a named one (its secret shown only now)."""
    if request.method == "GET":
        return JsonResponse({"tokens": [token_data(t) for t in tokens_of(user=request.user)]})
    name = token_name(json_body(request))
    token, key = token_create(user=request.user, name=name)
    return JsonResponse({"token": key, **token_data(token)}, status=201)


@api("DELETE", rate="write")
def token_detail(request: HttpRequest, token_id: int) -> HttpResponse:
    """Revoke one of the caller's tokens and close the sockets opened with it."""
    if not token_revoke(user=request.user, token_id=token_id):
        raise ApiError(404, "no such token")
    return HttpResponse(status=204)
