from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView

urlpatterns = [
    path("admin/", admin.site.urls),
    re_path(r"^api/v1/schema/?$", SpectacularAPIView.as_view(), name="schema"),
    path("api/v1/", include("realtime.urls")),
    path("api/v1/", include("executions.api.urls")),
]
