"""daphne's periodic check of every connection (timeouts, pings due), spread
over its 2 s in slices (realtime.server_hooks)."""

from collections import Counter

from twisted.internet import reactor

from realtime import server_hooks


class Connection:
    def __init__(self, checks: Counter):
        self.checks = checks

    def check_timeouts(self) -> None:
        self.checks[self] += 1


class FakeServer:
    def __init__(self, connections: int):
        self.checks = Counter()
        self.connections = {Connection(self.checks): {} for _ in range(connections)}

    def timeout_checker(self) -> None:
        server_hooks.check_timeouts_in_slices(self)


def test_every_connection_is_checked_once_a_round_a_slice_at_a_time(monkeypatch):
    scheduled = []
    monkeypatch.setattr(reactor, "callLater", lambda delay, fn: scheduled.append(delay))
    server = FakeServer(1000)
    slices = server_hooks.TIMEOUT_CHECK_SLICES

    per_call = []
    for _ in range(slices):
        before = sum(server.checks.values())
        server.timeout_checker()
        per_call.append(sum(server.checks.values()) - before)

    assert per_call == [1000 // slices] * slices
    assert set(server.checks.values()) == {1} and len(server.checks) == 1000
    assert scheduled == [server_hooks.TIMEOUT_CHECK_ROUND_SECONDS / slices] * slices
    # The next round starts over with the connections open then.
    server.timeout_checker()
    assert sum(server.checks.values()) == 1000 + 1000 // slices


def test_connections_closed_during_a_round_are_passed_over(monkeypatch):
    monkeypatch.setattr(reactor, "callLater", lambda delay, fn: None)
    server = FakeServer(40)
    server.timeout_checker()  # takes the round's snapshot, checks 2
    closed = [c for c in server.connections if not server.checks[c]]
    for connection in closed[:10]:
        del server.connections[connection]
    for _ in range(server_hooks.TIMEOUT_CHECK_SLICES - 1):
        server.timeout_checker()

    assert not any(server.checks[c] for c in closed[:10])
    assert set(server.checks[c] for c in server.connections) == {1}


def test_install_replaces_daphnes_all_at_once_check():
    from daphne.server import Server

    server_hooks.install()
    assert Server.timeout_checker is server_hooks.check_timeouts_in_slices


def test_a_check_that_raises_spares_the_others_and_the_next_checks(monkeypatch):
    scheduled = []
    monkeypatch.setattr(reactor, "callLater", lambda delay, fn: scheduled.append(fn))
    server = FakeServer(20)
    broken = next(iter(server.connections))

    def explode():
        raise RuntimeError("broken connection")

    broken.check_timeouts = explode
    for _ in range(server_hooks.TIMEOUT_CHECK_SLICES):
        server.timeout_checker()

    assert len(scheduled) == server_hooks.TIMEOUT_CHECK_SLICES
    assert {c for c in server.connections if server.checks[c] == 1} == set(server.connections) - {
        broken
    }
