from django.apps import AppConfig


class ExecutionsConfig(AppConfig):
    name = "executions"
    verbose_name = "Workflow executions"

    def ready(self) -> None:
        from executions import checks, feed, heartbeat, runners, runtime  # noqa: F401  register their checks
        from executions.engine import (
            nodes,  # noqa: F401  registers the built-in node types
            streams,  # noqa: F401  registers its checks
        )
        from executions.metrics import access  # noqa: F401  registers its checks
