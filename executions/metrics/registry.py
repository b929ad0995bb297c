"""The switch, the page Prometheus reads, and label values from fixed sets."""

from collections.abc import Collection

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    REGISTRY,
    disable_created_metrics,
    generate_latest,
)

# A counter's ``_created`` series doubles the page for a time nobody alerts on.
disable_created_metrics()

OTHER = "other"


class Switch:
    """``METRICS_ENABLED``, as the measures on hot paths ask it: ``switch.on``.

    Read from the settings at its first use and again whenever the setting
    changes (``override_settings``), so that a measure costs an attribute read
    rather than a lookup in the settings.
    """

    def __getattr__(self, name: str):
        if name != "on":
            raise AttributeError(name)
        self.on = bool(settings.METRICS_ENABLED)
        return self.on

    def forget(self) -> None:
        self.__dict__.pop("on", None)


switch = Switch()


@receiver(setting_changed, dispatch_uid="executions.metrics.switch")
def read_switch_again(sender, setting: str, **kwargs) -> None:
    if setting == "METRICS_ENABLED":
        switch.forget()


def metrics_enabled() -> bool:
    """Whether this process measures (``METRICS_ENABLED``)."""
    return switch.on


def metrics_page() -> tuple[bytes, str]:
    """This process's metrics in the Prometheus text format (0.0.4, which every
    Prometheus reads), and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_PLAIN_0_0_4


def bounded(value, known: Collection[str]) -> str:
    """``value`` as a label: itself when it is one of ``known``, else ``"other"``."""
    text = str(value)
    return text if text in known else OTHER


class Labelled:
    """A metric's children by their label values, each made once (``labels()`` takes
    a lock and checks its arguments at every call)."""

    __slots__ = ("children", "metric")

    def __init__(self, metric) -> None:
        self.metric = metric
        self.children: dict[tuple, object] = {}

    def __call__(self, *values: str):
        child = self.children.get(values)
        if child is None:
            child = self.children[values] = self.metric.labels(*values)
        return child

    def among(self, known: Collection[str], *values: str):
        """The child for ``values``, the last of them bounded to ``known`` (any other
        is ``"other"``, and not kept, so that nothing unbounded is)."""
        child = self.children.get(values)
        if child is None:
            if values[-1] not in known:
                return self.metric.labels(*values[:-1], OTHER)
            child = self.children[values] = self.metric.labels(*values)
        return child
