from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from messaging.metrics import metrics_view
from messaging.ops.health import healthz
from messaging.web.http import limit_posts
from messaging.web.installable import LogoutView
from messaging.web.views import LoginForm

urlpatterns = [
    # Before Django's own: every login attempt hashes a password, so the forms' POSTs are
    # counted per address and in total (messaging/http.py).
    path("admin/login/", limit_posts(admin.site.login)),
    path("admin/", admin.site.urls),
    path(
        "accounts/login/",
        limit_posts(auth_views.LoginView.as_view(authentication_form=LoginForm)),
        name="login",
    ),
    # Before Django's own: the answer also clears what the browser keeps of the chat.
    path("accounts/logout/", LogoutView.as_view(), name="logout"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics_view, name="metrics"),
    path("", include("messaging.web.urls")),
]
