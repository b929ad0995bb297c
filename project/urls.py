from django.contrib import admin
from django.urls import include, path

from dashboard.logins import AdminLoginForm, login_limited

# The admin's login form under the same login limits as the dashboard's.
admin.site.login_form = AdminLoginForm

urlpatterns = [
    path("admin/login/", login_limited(admin.site.login)),
    path("admin/", admin.site.urls),
    path("api/v1/", include("realtime.urls")),
    path("api/v1/", include("executions.api.urls")),
    # The dashboard's language switch: Django's set_language (POST language, next).
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("dashboard.urls")),
]
