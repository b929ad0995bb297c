import pytest

import realtime.auth
from tests.factories import make_execution, make_token


@pytest.fixture
def token(user) -> str:
    return make_token(user)


@pytest.fixture
def held_execution(user, no_dispatch):
    """A pending execution of ``user`` with its first event (seq 1) and nothing running it."""
    return make_execution(user)


@pytest.fixture
def token_reads(monkeypatch) -> list[str]:
    """The token lookups sockets make (each one a database read)."""
    reads: list[str] = []
    original = realtime.auth._user_for_token

    def counted(key):
        reads.append(key)
        return original(key)

    monkeypatch.setattr(realtime.auth, "_user_for_token", counted)
    return reads
