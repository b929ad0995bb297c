"""The runner backend that ``EXECUTIONS_RUNNER`` names, and its system check."""

import io

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command

from executions.runners import Runner, check_runner_setting, get_runner
from executions.runners.celery import CeleryRunner
from executions.runners.inprocess import InProcessRunner


class QuietRunner(Runner):
    """A backend of another app: dispatches nothing."""

    def dispatch(self, execution_id):
        pass


@pytest.mark.parametrize(
    "name, backend",
    [
        ("inprocess", InProcessRunner),
        ("celery", CeleryRunner),
        ("executions.runners.inprocess.InProcessRunner", InProcessRunner),
        ("tests.executions.test_runners.QuietRunner", QuietRunner),
    ],
)
def test_the_setting_names_a_backend_by_its_short_name_or_its_import_path(settings, name, backend):
    settings.EXECUTIONS_RUNNER = name

    assert type(get_runner()) is backend
    assert get_runner() is get_runner()  # one instance per process
    assert check_runner_setting() == []


def test_a_short_name_and_its_import_path_share_one_backend(settings):
    settings.EXECUTIONS_RUNNER = "inprocess"
    by_name = get_runner()
    settings.EXECUTIONS_RUNNER = "executions.runners.inprocess.InProcessRunner"

    assert get_runner() is by_name


def test_each_backend_says_where_its_executions_run(settings):
    settings.EXECUTIONS_RUNNER = "inprocess"
    embedded = get_runner()
    settings.EXECUTIONS_RUNNER = "celery"
    queued = get_runner()

    assert (embedded.embedded, embedded.queue_name(), embedded.waiting()) == (True, None, None)
    assert (queued.embedded, queued.queue_name()) == (False, "celery")


@pytest.mark.parametrize(
    "name, why",
    [
        ("in-process", "cannot be imported"),
        ("executions.runners.nowhere.Runner", "cannot be imported"),
        ("executions.runners.local.run_here", "is not a runner backend"),
    ],
)
def test_a_setting_that_names_no_backend_is_an_error_that_says_what_to_set(settings, name, why):
    settings.EXECUTIONS_RUNNER = name

    with pytest.raises(ImproperlyConfigured, match=why) as raised:
        get_runner()
    assert f"EXECUTIONS_RUNNER is {name!r}" in str(raised.value)
    assert "set it to 'inprocess', 'celery' or the import path" in str(raised.value)
    (error,) = check_runner_setting()
    assert (error.id, error.msg) == ("executions.E170", str(raised.value))


def test_a_worker_needs_the_celery_backend(settings):
    settings.EXECUTIONS_RUNNER = "inprocess"

    with pytest.raises(CommandError, match="Workers take executions from Redis"):
        call_command("worker", stdout=io.StringIO())
