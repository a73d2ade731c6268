from django.urls import path

from messaging.web import account_views, api, api_settings, api_tokens, views

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
]
