from django.apps import AppConfig


class EmitterConfig(AppConfig):
    name = "bench.emitter"
    label = "bench_emitter"

    def ready(self) -> None:
        from bench.emitter import nodes  # noqa: F401  registers bench_emit
