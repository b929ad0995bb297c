from django.urls import re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from executions.api.views import ExecutionViewSet, TokenView, WorkflowViewSet
from executions.api.workers import WorkersView

router = DefaultRouter()
# Every path works with and without its trailing slash (the seed posts to
# /api/v1/executions). Set after construction: the constructor ignores it.
router.trailing_slash = "/?"
router.register("workflows", WorkflowViewSet, basename="workflow")
router.register("executions", ExecutionViewSet, basename="execution")

urlpatterns = [
    re_path(r"^auth/token/?$", TokenView.as_view(), name="auth-token"),
    re_path(r"^workers/?$", WorkersView.as_view(), name="workers"),
    re_path(r"^schema/?$", SpectacularAPIView.as_view(), name="schema"),
    re_path(r"^docs/?$", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    *router.urls,
]
