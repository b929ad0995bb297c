from django.apps import AppConfig


class StreamingConfig(AppConfig):
    name = "tests.browser.streaming"
    label = "tests_streaming"

    def ready(self) -> None:
        from tests.browser.streaming import nodes  # noqa: F401  registers test_stream
