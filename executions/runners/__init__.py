"""Where executions run: the runner backend that ``EXECUTIONS_RUNNER`` names.

``EXECUTIONS_RUNNER`` is the import path of a ``Runner`` subclass, or one of
the names in ``RUNNER_ALIASES``: ``inprocess`` (the embedded mode, each server
runs its executions) or ``celery`` (worker processes take them from Redis).
The services call the backend through ``get_runner()`` only, so that nothing
of a backend is imported until it is configured.
"""

from functools import cache

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from executions.runners.base import Runner

RUNNER_ALIASES = {
    "inprocess": "executions.runners.inprocess.InProcessRunner",
    "celery": "executions.runners.celery.CeleryRunner",
}

__all__ = ["RUNNER_ALIASES", "Runner", "get_runner"]


def get_runner() -> Runner:
    """The configured backend, as ``EXECUTIONS_RUNNER`` reads now (one instance per path)."""
    name = settings.EXECUTIONS_RUNNER
    return _runner(RUNNER_ALIASES.get(name, name))


@cache
def _runner(path: str) -> Runner:
    try:
        backend = import_string(path)
    except ImportError as error:
        raise ImproperlyConfigured(
            f"EXECUTIONS_RUNNER is {settings.EXECUTIONS_RUNNER!r}, which cannot be imported "
            f"({error}): set it to 'inprocess', 'celery' or the import path of a subclass "
            "of executions.runners.Runner."
        ) from error
    if not (isinstance(backend, type) and issubclass(backend, Runner)):
        raise ImproperlyConfigured(
            f"EXECUTIONS_RUNNER is {settings.EXECUTIONS_RUNNER!r}, which is not a runner "
            "backend: set it to 'inprocess', 'celery' or the import path of a subclass of "
            "executions.runners.Runner."
        )
    return backend()


@checks.register
def check_runner_setting(**kwargs) -> list[checks.Error]:
    """A runner backend that cannot be loaded: no execution would ever run."""
    try:
        get_runner()
    except ImproperlyConfigured as error:
        return [checks.Error(str(error), id="executions.E170")]
    return []
