from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    name = "realtime"
    verbose_name = "Realtime push"

    def ready(self) -> None:
        from executions.services.retention import retention_pruner_register
        from realtime import (
            checks,  # noqa: F401  registers its checks
            signals,  # noqa: F401  connects the event push receiver
        )
        from realtime.services import socket_tickets_prune

        retention_pruner_register("tickets", socket_tickets_prune)
