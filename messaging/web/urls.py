from django.urls import path
from django.views.i18n import JSONCatalog

from messaging.web import (
    account_views,
    api,
    api_push,
    api_settings,
    api_tokens,
    email_views,
    installable,
    service_worker,
    uploads,
    views,
)

urlpatterns = [
    path("api/me/settings/", api_settings.my_settings, name="api-my-settings"),
    path("", views.inbox, name="inbox"),
    path("c/<int:conversation_id>/", views.conversation_page, name="conversation"),
    path("dm/<str:username>/", views.direct, name="direct"),
    path("accounts/signup/", views.signup, name="signup"),
    path("api/auth/register/", api.register, name="api-register"),
    path("api/auth/token/", api.token, name="api-token"),
    path("api/tokens/", api_tokens.token_list, name="api-tokens"),
    path("api/tokens/<int:token_id>/", api_tokens.token_detail, name="api-token-detail"),
    path("settings/", account_views.settings_page, name="settings"),
    # The language chosen on the settings page, kept in a cookie for LocaleMiddleware and
    # with the person's settings for emails and pushes.
    path("i18n/setlang/", account_views.choose_language, name="set_language"),
    # The browser client's texts in the page's language (the djangojs catalogues), as JSON
    # that static/messaging/text/i18n.js loads: the page's CSP runs no inline script.
    path("jsi18n/", JSONCatalog.as_view(), name="json-catalog"),
    path("api/conversations/", api.conversations, name="api-conversations"),
    path("api/conversations/<int:conversation_id>/", api.conversation, name="api-conversation"),
    path(
        "api/conversations/<int:conversation_id>/messages/",
        api.messages,
        name="api-messages",
    ),
    path(
        "api/conversations/<int:conversation_id>/members/",
        api.members,
        name="api-members",
    ),
    path(
        "api/conversations/<int:conversation_id>/members/<str:username>/",
        api.member,
        name="api-member",
    ),
    path("api/users/", api.users, name="api-users"),
    path("api/search/", api.search, name="api-search"),
    path("api/blocks/", api.block_list, name="api-blocks"),
    path("api/blocks/<str:username>/", api.block_detail, name="api-block"),
    path("api/messages/<int:message_id>/report/", api.report, name="api-report"),
    path("api/uploads/", uploads.upload_create, name="api-uploads"),
    path("files/<slug:upload_id>/", uploads.upload_file, name="upload-file"),
    path("files/<slug:upload_id>/thumbnail/", uploads.upload_thumbnail, name="upload-thumbnail"),
    path("sw.js", service_worker.service_worker, name="service-worker"),
    path("manifest.webmanifest", installable.manifest, name="web-manifest"),
    # The page the service worker keeps to start the chat offline (static/sw.js).
    path("shell/", views.app_shell, name="app-shell"),
    path("api/push/key/", api_push.push_key, name="api-push-key"),
    path("api/push/subscriptions/", api_push.push_subscriptions, name="api-push-subscriptions"),
    path("api/me/email/", email_views.my_email, name="api-my-email"),
    path("email/verify/<str:token>/", email_views.verify, name="email-verify"),
    path("email/unsubscribe/<str:token>/", email_views.unsubscribe_page, name="email-unsubscribe"),
]
