from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("realtime.urls")),
    path("api/v1/", include("executions.api.urls")),
    path("", include("dashboard.urls")),
]
