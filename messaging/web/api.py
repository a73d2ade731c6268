"""JSON API: tokens, registration, conversations, history, people."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import authenticate, get_user_model
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext as _

from messaging.domain import away, blocks, groups, moderation, selectors, services
from messaging.domain.ratelimit import check_rate_sync
from messaging.domain.search import message_search
from messaging.domain.tokens import token_create, token_issue
from messaging.protocol import ChatError, iso_utc, message_data, user_data
from messaging.web.api_tokens import token_name
from messaging.web.email_views import set_address
from messaging.web.http import (
    ApiError,
    api,
    bad_request,
    chat_error_response,
    client_key,
    form_errors,
    json_body,
)
from messaging.web.views import SignupForm

User = get_user_model()


def _string_field(data: dict, name: str, errors: dict) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        errors[name] = ["This field is required and must be a string."]
        return ""
    return value


@api("POST", auth=False, rate="login")
def register(request: HttpRequest) -> JsonResponse:
    """Create an account and return a bearer token for it."""
    if not settings.CHAT_REGISTRATION_OPEN:
        raise ApiError(403, "registration is closed")
    data = json_body(request)
    errors: dict[str, list[str]] = {}
    username = _string_field(data, "username", errors)
    password = _string_field(data, "password", errors)
    if errors:
        raise bad_request("invalid registration", errors)
    email = data.get("email", "")
    if not isinstance(email, str):
        raise bad_request("invalid registration", {"email": ["Must be a string."]})
    check_rate_sync("register", client_key(request), settings.CHAT_REGISTER_RATE)
    form = SignupForm(
        data={"username": username, "password1": password, "password2": password, "email": email}
    )
    if not form.is_valid():
        errors = form_errors(form)
        password_errors = errors.pop("password1", []) + errors.pop("password2", [])
        if password_errors:
            errors["password"] = password_errors
        raise bad_request("invalid registration", errors)
    user = form.save()
    if form.cleaned_data.get("email"):
        set_address(user, form.cleaned_data["email"])
    return JsonResponse({"token": token_issue(user=user), "user": user_data(user)}, status=201)


@api("POST", auth=False, rate="login")
def token(request: HttpRequest) -> JsonResponse:
    """Exchange a username and password for a new bearer token."""
    data = json_body(request)
    errors: dict[str, list[str]] = {}
    username = _string_field(data, "username", errors)
    password = _string_field(data, "password", errors)
    if errors:
        raise bad_request("username and password are required", errors)
    name = token_name(data)
    user = authenticate(request, username=username, password=password)
    if user is None:
        raise bad_request("wrong username or password")
    issued, key = token_create(user=user, name=name)
    return JsonResponse(
        {"token": key, "user": user_data(user), "expires_at": iso_utc(issued.expires_at)}
    )


def _usernames(data: dict) -> list[str]:
    """Return the request's `members`, or raise a 400 unless it is a list of usernames."""
    usernames = data.get("members")
    if (
        not isinstance(usernames, list)
        or not usernames
        or not all(isinstance(name, str) and name for name in usernames)
    ):
        raise bad_request(
            "members must be a list of usernames", {"members": [_("Give usernames.")]}
        )
    return usernames


@api("GET", "POST", rate={"GET": "read", "POST": "group_change"})
def conversations(request: HttpRequest) -> JsonResponse:
    """List the caller's conversations, or start one."""
    if request.method == "GET":
        limit = _int_param(request, "limit", settings.CHAT_INBOX_PAGE, 1, 200)
        cursor = None
        if request.GET.get("cursor"):
            try:
                cursor = selectors.parse_inbox_cursor(request.GET["cursor"])
            except (ValueError, OverflowError):
                raise bad_request(
                    "cursor must be a next_cursor this list gave",
                    {"cursor": [_("Not a place in the list of conversations.")]},
                ) from None
        page, has_more, next_cursor = selectors.conversation_page_for_user(
            user=request.user, limit=limit, cursor=cursor
        )
        return JsonResponse(
            {"conversations": page, "has_more": has_more, "next_cursor": next_cursor}
        )
    data = json_body(request)
    usernames = _usernames(data)
    title = data.get("title", "")
    if not isinstance(title, str):
        raise bad_request("title must be a string", {"title": ["Must be a string."]})
    wanted = {name for name in usernames if name != request.user.username}
    found = {user.username: user for user in User.objects.filter(username__in=wanted)}
    missing = sorted(wanted - set(found))
    if missing:
        raise bad_request(
            "unknown members",
            {"members": [_("No user named %(name)s.") % {"name": name} for name in missing]},
        )
    if not found:
        raise bad_request("name at least one other person", {"members": [_("Name someone else.")]})
    if len(found) == 1:
        conversation, created = services.conversation_open_direct(
            user=request.user, other=next(iter(found.values()))
        )
    else:
        conversation = services.conversation_create_group(
            creator=request.user, others=list(found.values()), title=title
        )
        created = True
    detail = selectors.conversation_detail(user=request.user, conversation_id=conversation.pk)
    return JsonResponse(detail, status=201 if created else 200)


@api("GET", "PATCH", rate={"GET": "read", "PATCH": "group_change"})
def conversation(request: HttpRequest, conversation_id: int) -> JsonResponse:
    """Show one of the caller's conversations with each member's read pointer; rename a
    group, or mute or unmute it for the caller (`muted`)."""
    if request.method == "PATCH":
        data = json_body(request)
        if "muted" in data:
            _mute(request, conversation_id, data)
        if "title" in data or "muted" not in data:
            title = data.get("title")
            if not isinstance(title, str):
                raise bad_request("title must be a string", {"title": ["Must be a string."]})
            try:
                groups.group_rename(
                    actor=request.user, conversation_id=conversation_id, title=title
                )
            except ChatError as error:
                return chat_error_response(error, field="title")
    detail = selectors.conversation_detail(user=request.user, conversation_id=conversation_id)
    # The caller's own pointer always; others' only as the privacy rule lets the caller see.
    pointers = selectors.read_pointers(conversation_id=conversation_id, viewer=request.user)
    detail["read_pointers"] = {str(user_id): up_to for user_id, up_to in pointers.items()}
    return JsonResponse(detail)


def _mute(request: HttpRequest, conversation_id: int, data: dict) -> None:
    """Mute or unmute the conversation for the caller, or raise a 400 (404: not a member)."""
    muted = data["muted"]
    if type(muted) is not bool:
        raise bad_request("muted must be true or false", {"muted": ["Must be true or false."]})
    away.conversation_mute(user=request.user, conversation_id=conversation_id, muted=muted)


def _int_param(request: HttpRequest, name: str, default: int | None, low: int, high: int):
    raw = request.GET.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19 or not low <= int(raw) <= high:
        raise bad_request(
            f"{name} must be a whole number from {low} to {high}",
            {name: [_("A whole number from %(low)s to %(high)s.") % {"low": low, "high": high}]},
        )
    return int(raw)


@api("GET", rate="read")
def messages(request: HttpRequest, conversation_id: int) -> JsonResponse:
    """Page through a conversation's history, newest page first, each page ascending."""
    selectors.conversation_for_member(user=request.user, conversation_id=conversation_id)
    limit = _int_param(request, "limit", settings.CHAT_HISTORY_PAGE, 1, 200)
    before = _int_param(request, "before", None, 1, 2**63 - 1)
    after = _int_param(request, "after", None, 0, 2**63 - 1)
    if before is not None and after is not None:
        raise bad_request("give before or after, not both", {"after": [_("Not with before.")]})
    page, has_more = selectors.message_history(
        conversation_id=conversation_id, before=before, limit=limit, after=after
    )
    return JsonResponse(
        {"messages": [message_data(message) for message in page], "has_more": has_more}
    )


@api("GET", rate="user_lookup")
def users(request: HttpRequest) -> JsonResponse:
    """Find people by username prefix."""
    prefix = request.GET.get("q", "").strip()
    found = selectors.users_by_prefix(user=request.user, prefix=prefix) if prefix else []
    return JsonResponse({"users": [user_data(user) for user in found]})


@api("GET", "POST", rate={"GET": "read", "POST": "write"})
def block_list(request: HttpRequest) -> JsonResponse:
    """List the people the caller blocks, or block one more."""
    if request.method == "GET":
        return JsonResponse(
            {"blocks": [user_data(user) for user in blocks.blocks_of(user=request.user)]}
        )
    data = json_body(request)
    username = data.get("username")
    if not isinstance(username, str) or not username:
        raise bad_request("username is required", {"username": [_("Give a username.")]})
    try:
        blocked = blocks.block_create(blocker=request.user, username=username)
    except ChatError as error:
        return chat_error_response(error, field="username")
    return JsonResponse(user_data(blocked), status=201)


@api("DELETE", rate="write")
def block_detail(request: HttpRequest, username: str) -> HttpResponse:
    """Lift a block."""
    blocks.block_remove(blocker=request.user, username=username)
    return HttpResponse(status=204)


@api("POST", rate="write")
def report(request: HttpRequest, message_id: int) -> JsonResponse:
    """Report a message to staff; a second report by the same person changes nothing."""
    data = json_body(request)
    reason = data.get("reason")
    if not isinstance(reason, str):
        raise bad_request("reason is required", {"reason": [_("Say why.")]})
    try:
        made, created = moderation.report_create(
            reporter=request.user, message_id=message_id, reason=reason
        )
    except ChatError as error:
        return chat_error_response(error, field="reason")
    body = {
        "id": made.pk,
        "message": made.message_id,
        "reason": made.reason,
        "status": made.status,
        "created_at": iso_utc(made.created_at),
    }
    return JsonResponse(body, status=201 if created else 200)


@api("POST", rate="group_change")
def members(request: HttpRequest, conversation_id: int) -> JsonResponse:
    """Add people to a group."""
    usernames = _usernames(json_body(request))
    try:
        groups.group_add(actor=request.user, conversation_id=conversation_id, usernames=usernames)
    except ChatError as error:
        if error.code == "not_found" and error.detail.startswith("no user"):
            raise bad_request(error.detail, {"members": [error.detail]}) from None
        return chat_error_response(error, field="members")
    return JsonResponse(
        selectors.conversation_detail(user=request.user, conversation_id=conversation_id)
    )


@api("DELETE", rate="group_change")
def member(request: HttpRequest, conversation_id: int, username: str) -> HttpResponse:
    """Remove someone from a group, or leave it (your own username)."""
    groups.group_remove(actor=request.user, conversation_id=conversation_id, username=username)
    return HttpResponse(status=204)


@api("GET", rate="search")
def search(request: HttpRequest) -> JsonResponse:
    """Search the caller's conversations: every word must match; newest first, paged."""
    query = request.GET.get("q", "")
    limit = _int_param(request, "limit", settings.CHAT_HISTORY_PAGE, 1, 200)
    before = _int_param(request, "before", None, 1, 2**63 - 1)
    try:
        hits, has_more = message_search(user=request.user, query=query, before=before, limit=limit)
    except ChatError as error:
        raise bad_request(error.detail, {"q": [error.detail]}) from None
    return JsonResponse({"messages": hits, "has_more": has_more})
