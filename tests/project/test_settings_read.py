"""Each environment variable is read by its declaration, and a bad value names the variable."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from executions.env import read_all
from project.conf import every_setting

ROOT = Path(__file__).resolve().parents[2]


def read(**environ: str) -> dict:
    return read_all(every_setting(), environ)


def test_without_variables_every_setting_has_its_default():
    values = read()

    assert values["EXECUTIONS_LEASE_SECONDS"] == 30.0
    assert values["API_MAX_BODY_BYTES"] == 1024 * 1024
    assert values["METRICS_ENABLED"] is True and values["DEBUG"] is False
    assert values["ALLOWED_HOSTS"] == ["localhost", "127.0.0.1", "[::1]"]
    assert values["EXECUTIONS_RUNNER"] == "inprocess"
    assert values["API_TOKEN_RATE"] == "10/minute"
    assert values["LOG_LEVEL"] == "INFO"


def test_values_are_read_as_their_kind():
    values = read(
        EXECUTIONS_LEASE_SECONDS="2.5",
        SECURE_HSTS_SECONDS="3600",
        DEBUG="Yes",
        METRICS_ENABLED="off",
        EXECUTIONS_HTTP_ALLOWED_HOSTS=" a.example , b.example:8443,",
        REALTIME_HANDSHAKE_RATE="0",
    )

    assert values["EXECUTIONS_LEASE_SECONDS"] == 2.5
    assert values["SECURE_HSTS_SECONDS"] == 3600 and isinstance(values["SECURE_HSTS_SECONDS"], int)
    assert (values["DEBUG"], values["METRICS_ENABLED"]) == (True, False)
    assert values["EXECUTIONS_HTTP_ALLOWED_HOSTS"] == ["a.example", "b.example:8443"]
    assert values["REALTIME_HANDSHAKE_RATE"] == "0"


def test_an_empty_variable_is_its_default_except_where_empty_means_something():
    values = read(EXECUTIONS_LEASE_SECONDS="", DEBUG="", API_LOGIN_RATE="", LOG_FORMAT="")

    assert values["EXECUTIONS_LEASE_SECONDS"] == 30.0
    assert values["DEBUG"] is False
    assert values["LOG_FORMAT"] == "text"
    # An empty rate is no limit, and the token rate follows the login rate.
    assert (values["API_LOGIN_RATE"], values["API_TOKEN_RATE"]) == ("", "")


def test_defaults_that_follow_other_settings():
    with_redis = read(REDIS_URL="redis://cache:6379/0")
    chosen = read(REDIS_URL="redis://cache:6379/0", EXECUTIONS_RUNNER="inprocess")
    login = read(API_LOGIN_RATE="3/hour")
    both = read(API_LOGIN_RATE="3/hour", API_TOKEN_RATE="1/second")

    assert (with_redis["EXECUTIONS_RUNNER"], chosen["EXECUTIONS_RUNNER"]) == ("celery", "inprocess")
    assert (login["API_TOKEN_RATE"], both["API_TOKEN_RATE"]) == ("3/hour", "1/second")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "EXECUTIONS_LEASE_SECONDS",
            "abc",
            "EXECUTIONS_LEASE_SECONDS must be a number of seconds, got 'abc'",
        ),
        (
            "EXECUTIONS_LEASE_SECONDS",
            "0",
            "EXECUTIONS_LEASE_SECONDS must be a number of seconds above 0, got '0'",
        ),
        (
            "REALTIME_SEND_TIMEOUT",
            "nan",
            "REALTIME_SEND_TIMEOUT must be a number of seconds, got 'nan'",
        ),
        (
            "API_MAX_BODY_BYTES",
            "1MB",
            "API_MAX_BODY_BYTES must be a whole number of bytes, got '1MB'",
        ),
        ("EXECUTIONS_MAX_RUNS", "2.5", "EXECUTIONS_MAX_RUNS must be a whole number, got '2.5'"),
        (
            "TRUSTED_PROXY_HOPS",
            "-1",
            "TRUSTED_PROXY_HOPS must be a whole number, 0 or more, got '-1'",
        ),
        (
            "EXECUTIONS_PROGRESS_EVENTS_PER_SECOND",
            "0",
            "EXECUTIONS_PROGRESS_EVENTS_PER_SECOND must be a number above 0, got '0'",
        ),
        (
            "DEBUG",
            "maybe",
            "DEBUG must be on or off (1, true, yes, on or 0, false, no, off), got 'maybe'",
        ),
        (
            "API_LOGIN_RATE",
            "10 a minute",
            "API_LOGIN_RATE must be a rate such as 10/minute (N/second, N/minute, N/hour or "
            "N/day), or empty for no limit, got '10 a minute'",
        ),
        (
            "REALTIME_HANDSHAKE_RATE",
            "-5/minute",
            "REALTIME_HANDSHAKE_RATE must be a rate such as 10/minute (N/second, N/minute, "
            "N/hour or N/day), or empty or 0 for no limit, got '-5/minute'",
        ),
        (
            "LOG_LEVEL",
            "LOUD",
            "LOG_LEVEL must be one of 'DEBUG', 'INFO', 'WARNING', 'ERROR', 'CRITICAL', got 'LOUD'",
        ),
    ],
)
def test_a_value_that_cannot_be_read_is_refused_with_its_name(name, value, message):
    with pytest.raises(ImproperlyConfigured) as refused:
        read(**{name: value})

    assert str(refused.value) == message


def test_the_settings_module_refuses_a_bad_value_before_anything_starts():
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(DJANGO_SETTINGS_MODULE="project.settings", DEBUG="1", EXECUTIONS_LEASE_SECONDS="abc")

    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert "EXECUTIONS_LEASE_SECONDS must be a number of seconds, got 'abc'" in result.stderr
