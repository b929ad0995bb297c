"""The per-address bound on socket handshakes, checked before anything reads the database."""

import ipaddress
import uuid

import pytest

import realtime.auth
from realtime.handshakes import HandshakeCounter
from tests.realtime.helpers import (
    STATUS_FIELDS,
    bearer,
    open_socket,
    path_for,
    receive,
    receive_refusal,
)

pytestmark = pytest.mark.django_db(transaction=True)


def fresh_address() -> str:
    """An address no other test used, so that the process's counts start at 0 for it."""
    return str(ipaddress.IPv6Address(uuid.uuid4().int))


def through_proxy(address: str) -> tuple[bytes, bytes]:
    return (b"x-forwarded-for", f"6.6.6.6, {address}".encode())


@pytest.fixture
def token_reads(token_reads, monkeypatch) -> list[str]:
    """As the package's, with each handshake reading its token (reuse is tested in
    test_security_token_lookups)."""
    monkeypatch.setattr(realtime.auth.TokenLookups, "_keep", lambda self, key, user: None)
    return token_reads


async def test_past_the_rate_a_handshake_gets_an_error_and_4429_before_any_read(
    held_execution, token, token_reads, settings
):
    settings.TRUSTED_PROXY_HOPS = 1
    settings.REALTIME_HANDSHAKE_RATE = "2/minute"
    address = fresh_address()
    headers = [*bearer(token), through_proxy(address)]
    for _ in range(2):
        async with open_socket(path_for(held_execution.id), headers) as socket:
            assert set(await receive(socket)) == STATUS_FIELDS

    async with open_socket(path_for(held_execution.id), headers) as socket:
        text, code = await receive_refusal(socket)

    assert code == 4429
    assert "at most 2 per minute (REALTIME_HANDSHAKE_RATE)" in text
    assert len(token_reads) == 2  # the refused handshake read nothing
    # Another address (the forged entry changes nothing) is served.
    other = [*bearer(token), through_proxy(fresh_address())]
    async with open_socket(path_for(held_execution.id), other) as socket:
        assert set(await receive(socket)) == STATUS_FIELDS


@pytest.mark.parametrize("rate", ["", "0", "0/minute"])
async def test_an_empty_or_zero_rate_means_no_limit(held_execution, token, settings, rate):
    settings.TRUSTED_PROXY_HOPS = 1
    settings.REALTIME_HANDSHAKE_RATE = rate
    headers = [*bearer(token), through_proxy(fresh_address())]
    for _ in range(3):
        async with open_socket(path_for(held_execution.id), headers) as socket:
            assert set(await receive(socket)) == STATUS_FIELDS


def test_the_default_lets_the_benchmarks_storms_from_one_address_through(settings):
    # The full benchmark opens 1,000 subscribers, then 5,000 idle sockets, from
    # 127.0.0.1 within a minute on one server.
    assert settings.REALTIME_HANDSHAKE_RATE == "10000/minute"


def test_the_counts_start_again_each_window():
    counter = HandshakeCounter()
    assert [counter.admit("a", limit=2, period=60, now=t) for t in (0, 1, 2)] == [None, None, 58]
    assert counter.admit("b", limit=2, period=60, now=3) is None
    assert counter.admit("a", limit=2, period=60, now=60) is None
