import pytest
from channels.layers import channel_layers
from rest_framework.test import APIClient

from executions.dispatch import stop_in_process_runs
from executions.engine.db import close_db_threads
from tests.factories import make_token, make_user


@pytest.fixture(autouse=True)
def fresh_channel_layer():
    """Each test gets an empty channel layer, and no execution outlives its test."""
    channel_layers.backends.clear()
    yield
    stop_in_process_runs()
    channel_layers.backends.clear()


@pytest.fixture(scope="session", autouse=True)
def close_engine_connections(django_db_setup, django_db_blocker):
    """Close the engine threads' connections before the test database is dropped."""
    yield
    close_db_threads()


@pytest.fixture
def user(db):
    return make_user("alice")


@pytest.fixture
def other_user(db):
    return make_user("bob")


@pytest.fixture
def staff_user(db):
    return make_user("root", staff=True)


def bearer_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(user)}")
    return client


@pytest.fixture
def api(user) -> APIClient:
    """An API client authenticated as ``user`` with a Bearer token."""
    return bearer_client(user)
