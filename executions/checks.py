"""System checks of the executions app's settings as they are at run time.

Reading a variable already refuses a value outside its declared bounds
(``executions.conf``); these checks hold the same bounds against the Django
settings (which ``override_settings`` or a settings module may also set), and
the combinations of settings that cannot work together.
"""

from django.conf import settings
from django.core import checks

from executions import conf
from executions.env import bounds_check
from executions.runners import RUNNER_ALIASES

CELERY_RUNNER = RUNNER_ALIASES["celery"]
# Heartbeats a process may miss before it looks gone, for WORKERS_TIMEOUT_SECONDS
# to be comfortably above WORKERS_HEARTBEAT_SECONDS.
HEARTBEATS_PER_TIMEOUT = 2


# Values outside the bounds their declarations give.
check_declared_bounds = checks.register(bounds_check(conf.SETTINGS, "executions.E100"))


@checks.register
def check_runner(**kwargs) -> list[checks.Error]:
    """The celery runner without the Redis it takes its executions from (a runner
    that cannot be loaded at all is ``executions.runners``' E170)."""
    runner = settings.EXECUTIONS_RUNNER
    if CELERY_RUNNER in (runner, RUNNER_ALIASES.get(runner)) and not settings.REDIS_URL:
        message = (
            f"EXECUTIONS_RUNNER is {runner!r} but REDIS_URL is not set: workers take their "
            "executions from Redis. Set REDIS_URL, or set EXECUTIONS_RUNNER=inprocess to run "
            "them in the server process."
        )
        return [checks.Error(message, id="executions.E171")]
    return []


@checks.register
def check_renewal_margins(**kwargs) -> list[checks.Warning]:
    """Heartbeats and record writers that leave no room for one slow round.

    A runner renews its leases every ``EXECUTIONS_CANCEL_POLL_INTERVAL``, and
    at least three times per ``EXECUTIONS_LEASE_SECONDS`` whatever the two
    are, so a lease always outlasts two missed renewals; a process's heartbeat
    has no such margin built in.
    """
    warnings = []
    every, timeout = settings.WORKERS_HEARTBEAT_SECONDS, settings.WORKERS_TIMEOUT_SECONDS
    if _numbers(every, timeout) and every < timeout < HEARTBEATS_PER_TIMEOUT * every:
        warnings.append(
            checks.Warning(
                f"WORKERS_TIMEOUT_SECONDS ({timeout!r}) is less than twice "
                f"WORKERS_HEARTBEAT_SECONDS ({every!r}): one late heartbeat makes a live "
                "process look gone. Set it to two heartbeats or more (the default is 20 for 5).",
                id="executions.W151",
            )
        )
    writers, threads = settings.EXECUTIONS_RECORD_WRITERS, settings.EXECUTIONS_DB_THREADS
    if _numbers(writers, threads) and writers > threads:
        warnings.append(
            checks.Warning(
                f"EXECUTIONS_RECORD_WRITERS ({writers!r}) is more than EXECUTIONS_DB_THREADS "
                f"({threads!r}): each batch of records is written in one of those threads, so "
                "the writers beyond them only wait. Lower it, or raise EXECUTIONS_DB_THREADS.",
                id="executions.W172",
            )
        )
    return warnings


def _numbers(*values: object) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
