"""Persistent PostgreSQL connections are pinged only after sitting idle (executions.postgresql)."""

import pytest
from django.db import OperationalError, close_old_connections, connection, connections

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def pings(monkeypatch):
    """How many health checks (``SELECT 1``) the default connection made."""
    assert connection.vendor == "postgresql"
    count = []
    wrapper = type(connections["default"])
    checked = wrapper.is_usable

    def is_usable(self):
        count.append(1)
        return checked(self)

    monkeypatch.setattr(wrapper, "is_usable", is_usable)
    return count


def query() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def test_a_connection_in_use_is_not_pinged_before_each_unit_of_work(pings, settings):
    settings.DATABASE_HEALTH_CHECK_AFTER_IDLE = 60
    first = query()
    for _ in range(5):
        close_old_connections()
        assert query() == first
    assert pings == []


def test_a_connection_idle_past_the_setting_is_pinged_first(pings, settings):
    settings.DATABASE_HEALTH_CHECK_AFTER_IDLE = 0
    first = query()
    close_old_connections()
    assert query() == first
    assert len(pings) == 1


def test_a_connection_that_broke_while_in_use_is_replaced_after_its_failure(pings, settings):
    settings.DATABASE_HEALTH_CHECK_AFTER_IDLE = 60
    first = query()
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [first])
    finally:
        other.close()
    close_old_connections()
    # Not pinged: the query finds the connection broken, as it would right after a ping.
    with pytest.raises(OperationalError):
        query()
    close_old_connections()
    assert query() != first
