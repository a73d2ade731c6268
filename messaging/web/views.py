"""Pages: inbox, conversation, direct-message shortcut, sign-up."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model, login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext, gettext_lazy

from messaging.domain import selectors, services
from messaging.domain.ratelimit import check_rate_sync
from messaging.domain.usernames import validate_new_username
from messaging.protocol import ChatError, message_data, user_data
from messaging.web.email_views import set_address
from messaging.web.http import client_key, page_rate_refusal, too_many_response

User = get_user_model()


class SignupForm(UserCreationForm):
    email = forms.EmailField(
        required=False,
        label=gettext_lazy("Email (optional)"),
        help_text=gettext_lazy(
            "For emails about messages you miss while away; we send a link to confirm "
            "it first. You can add or change it later in Settings."
        ),
    )

    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username",)

    def clean_username(self) -> str | None:
        """Refuse a name that hides characters, passes for someone else's or is reserved."""
        username = super().clean_username()
        if username is not None:
            validate_new_username(username)
        return username


class LoginForm(AuthenticationForm):
    """Django's login form, which also tells a deactivated person why they cannot log in."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "inactive": gettext_lazy(
            "This account has been deactivated, so it can no longer log in. "
            "If you think this is a mistake, ask the people who run this chat."
        ),
    }

    def clean(self):
        try:
            return super().clean()
        except ValidationError:
            # Said only to someone who knows the password: strangers learn nothing about
            # which usernames exist.
            if self._deactivated_with_this_password():
                raise ValidationError(self.error_messages["inactive"], code="inactive") from None
            raise

    def _deactivated_with_this_password(self) -> bool:
        username = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        if not username or not password:
            return False
        person = User._default_manager.filter(
            **{User.USERNAME_FIELD: username}, is_active=False
        ).first()
        return person is not None and person.check_password(password)


def _chat_page(request: HttpRequest, active: dict | None, *, shell: bool = False) -> HttpResponse:
    history, has_more = [], False
    if active is not None:
        history, has_more = selectors.message_history(
            conversation_id=active["id"], before=None, limit=settings.CHAT_HISTORY_PAGE
        )
    config = {
        "user": user_data(request.user),
        "conversation": active["id"] if active else None,
        "maxBody": settings.CHAT_MAX_BODY,
        "wsPath": "/ws/chat/",
        "historyPage": settings.CHAT_HISTORY_PAGE,
        "history": [message_data(message) for message in history],
        "hasMore": has_more,
    }
    conversations: list[dict] = []
    if shell:
        # Drawn by the client from what this browser kept (static/messaging/state/offline.js).
        config["shell"] = True
    else:
        # The inbox's first page; the client asks for the next when its list is scrolled.
        conversations, inbox_more, inbox_cursor = selectors.conversation_page_for_user(
            user=request.user, limit=settings.CHAT_INBOX_PAGE
        )
        config["inboxCursor"] = inbox_cursor if inbox_more else None
    return render(
        request,
        "messaging/chat.html",
        {
            "conversations": conversations,
            "active": active,
            "history": config["history"],
            "chat_config": config,
        },
    )


@login_required
def inbox(request: HttpRequest) -> HttpResponse:
    """Show the inbox: conversations by last activity, with unread counts."""
    return _chat_page(request, None)


@login_required
def conversation_page(request: HttpRequest, conversation_id: int) -> HttpResponse:
    """Show one conversation of the caller's (404 for anyone else)."""
    try:
        active = selectors.conversation_detail(user=request.user, conversation_id=conversation_id)
    except ChatError:
        raise Http404("No such conversation.") from None
    return _chat_page(request, active)


@login_required
def app_shell(request: HttpRequest) -> HttpResponse:
    """Serve the chat page without its data: the service worker's page for an offline start."""
    return _chat_page(request, None, shell=True)


@login_required
def direct(request: HttpRequest, username: str) -> HttpResponse:
    """Open the direct conversation with someone, creating it on first use."""
    # PostgreSQL cannot even look a name with NUL up.
    other = None if "\x00" in username else User.objects.filter(username=username).first()
    if other is None:
        return render(
            request,
            "messaging/problem.html",
            {
                "problem": gettext(
                    "There is no one called “%(username)s” on this chat. "
                    "Check the spelling, or search for them by part of their name."
                )
                % {"username": username}
            },
            status=404,
        )
    if other.pk == request.user.pk:
        return render(
            request,
            "messaging/problem.html",
            {"problem": gettext("You cannot message yourself.")},
            status=400,
        )
    try:
        conversation, _ = services.conversation_open_direct(user=request.user, other=other)
    except ChatError as error:
        return render(request, "messaging/problem.html", {"problem": error.detail}, status=403)
    return redirect("conversation", conversation_id=conversation.pk)


def signup(request: HttpRequest) -> HttpResponse:
    """Create an account in the browser and sign in."""
    if not settings.CHAT_REGISTRATION_OPEN:
        return render(
            request,
            "messaging/problem.html",
            {"problem": gettext("Registration is closed.")},
            status=403,
        )
    if request.user.is_authenticated:
        return redirect("inbox")
    if request.method == "POST":
        refusal = page_rate_refusal(request)
        if refusal is not None:
            return refusal
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            check_rate_sync("register", client_key(request), settings.CHAT_REGISTER_RATE)
        except ChatError as error:
            return too_many_response(request, error.detail, error.retry_after or 1)
        user = form.save()
        if form.cleaned_data.get("email"):
            set_address(user, form.cleaned_data["email"])
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect(reverse("inbox"))
    return render(request, "registration/signup.html", {"form": form})
