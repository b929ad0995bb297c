import pytest

from tests.factories import make_execution, make_token


@pytest.fixture
def token(user) -> str:
    return make_token(user)


@pytest.fixture
def no_dispatch(monkeypatch):
    """New executions stay pending: the test records every change through the services."""
    monkeypatch.setattr("executions.dispatch.execution_dispatch", lambda execution_id: None)


@pytest.fixture
def held_execution(user, no_dispatch):
    """A pending execution of ``user`` with its first event (seq 1) and nothing running it."""
    return make_execution(user)
