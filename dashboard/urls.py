from django.contrib.auth import views as auth_views
from django.urls import path
from django.views.i18n import JavaScriptCatalog

from dashboard import views
from dashboard.logins import LoginForm, login_limited

app_name = "dashboard"

urlpatterns = [
    path("", views.executions_page, name="executions"),
    path("executions/<uuid:execution_id>/", views.execution_page, name="execution"),
    path("workflows/", views.workflows_page, name="workflows"),
    path("workers/", views.workers_page, name="workers"),
    path("workflows/new/", views.workflow_page, name="workflow-new"),
    path("workflows/<uuid:workflow_id>/", views.workflow_page, name="workflow"),
    path(
        "login/",
        login_limited(
            auth_views.LoginView.as_view(
                template_name="dashboard/login.html",
                authentication_form=LoginForm,
                redirect_authenticated_user=True,
            )
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    # The texts of the dashboard's modules, in the request's language.
    path(
        "jsi18n/",
        JavaScriptCatalog.as_view(packages=["dashboard"]),
        name="javascript-catalog",
    ),
]
