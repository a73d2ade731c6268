from django.contrib import admin
from django.urls import include, path

from messaging.health import healthz
from messaging.metrics import metrics_view

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics_view, name="metrics"),
    path("", include("messaging.urls")),
]
