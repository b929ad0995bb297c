"""System checks of the executions app's settings: declared bounds and combinations."""

import pytest
from django.core import checks

from executions.checks import check_declared_bounds, check_renewal_margins, check_runner

OURS = {
    "executions.E100",
    "executions.E170",
    "executions.E171",
    "executions.W151",
    "executions.W172",
}


def test_the_default_settings_pass():
    assert check_declared_bounds() == []
    assert check_runner() == []
    assert check_renewal_margins() == []
    assert not [e for e in checks.run_checks() if e.id in OURS]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "EXECUTIONS_LEASE_SECONDS",
            0,
            "EXECUTIONS_LEASE_SECONDS is 0; it must be a number of seconds above 0.",
        ),
        (
            "EXECUTIONS_MAX_RUNS",
            0,
            "EXECUTIONS_MAX_RUNS is 0; it must be a whole number, 1 or more.",
        ),
        (
            "API_MAX_BODY_BYTES",
            "1MB",
            "API_MAX_BODY_BYTES is '1MB'; it must be a whole number of bytes, 1 or more.",
        ),
    ],
)
def test_a_value_outside_its_declared_bounds_is_an_error(settings, name, value, message):
    setattr(settings, name, value)

    errors = check_declared_bounds()

    assert [(e.id, e.msg) for e in errors] == [("executions.E100", message)]
    assert [e.msg for e in checks.run_checks() if e.id == "executions.E100"] == [message]


def test_the_celery_runner_without_redis_is_an_error(settings):
    settings.EXECUTIONS_RUNNER = "celery"
    settings.REDIS_URL = ""

    [error] = check_runner()

    assert error.id == "executions.E171"
    assert "REDIS_URL" in error.msg

    settings.EXECUTIONS_RUNNER = "executions.runners.celery.CeleryRunner"  # by its path
    assert [error.id for error in check_runner()] == ["executions.E171"]
    settings.REDIS_URL = "redis://127.0.0.1:6379/0"
    assert check_runner() == []


def test_a_worker_timeout_within_two_heartbeats_is_a_warning(settings):
    settings.WORKERS_HEARTBEAT_SECONDS = 5
    settings.WORKERS_TIMEOUT_SECONDS = 8

    [warning] = check_renewal_margins()

    assert (warning.id, warning.level) == ("executions.W151", checks.WARNING)
    assert "WORKERS_TIMEOUT_SECONDS (8)" in warning.msg

    settings.WORKERS_TIMEOUT_SECONDS = 10
    assert check_renewal_margins() == []


def test_more_record_writers_than_database_threads_is_a_warning(settings):
    settings.EXECUTIONS_RECORD_WRITERS = 3
    settings.EXECUTIONS_DB_THREADS = 2

    [warning] = check_renewal_margins()

    assert warning.id == "executions.W172"
    assert "EXECUTIONS_DB_THREADS (2)" in warning.msg
