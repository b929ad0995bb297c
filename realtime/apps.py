from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    name = "realtime"
    verbose_name = "Realtime push"

    def ready(self) -> None:
        from executions.pushes import push_side_register
        from executions.services.retention import retention_pruner_register
        from realtime import (
            checks,  # noqa: F401  registers its checks
            patches,
            signals,  # noqa: F401  connects the event push receiver
        )
        from realtime.longpoll import events_page_when_recorded
        from realtime.publish import after_pushes
        from realtime.services import socket_tickets_prune

        patches.check_versions()
        retention_pruner_register("tickets", socket_tickets_prune)
        push_side_register(after_pushes=after_pushes, events_page_waiter=events_page_when_recorded)
