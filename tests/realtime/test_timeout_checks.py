"""daphne's periodic check of every connection (timeouts, pings due), spread
over its 2 s in slices (realtime.patches.daphne)."""

from collections import Counter

from twisted.internet import reactor

from realtime.patches import daphne as daphne_patch


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
        daphne_patch.check_timeouts_in_slices(self)


def test_every_connection_is_checked_once_a_round_a_slice_at_a_time(monkeypatch):
    scheduled = []
    monkeypatch.setattr(reactor, "callLater", lambda delay, fn: scheduled.append(delay))
    server = FakeServer(1000)
    slices = daphne_patch.TIMEOUT_CHECK_SLICES

    per_call = []
    for _ in range(slices):
        before = sum(server.checks.values())
        server.timeout_checker()
        per_call.append(sum(server.checks.values()) - before)

    assert per_call == [1000 // slices] * slices
    assert set(server.checks.values()) == {1} and len(server.checks) == 1000
    assert scheduled == [daphne_patch.TIMEOUT_CHECK_ROUND_SECONDS / slices] * slices
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
    for _ in range(daphne_patch.TIMEOUT_CHECK_SLICES - 1):
        server.timeout_checker()

    assert not any(server.checks[c] for c in closed[:10])
    assert set(server.checks[c] for c in server.connections) == {1}


def test_the_served_daphne_checks_in_slices():
    from daphne.server import Server

    assert Server.timeout_checker is daphne_patch.check_timeouts_in_slices


def test_a_check_that_raises_spares_the_others_and_the_next_checks(monkeypatch):
    scheduled = []
    monkeypatch.setattr(reactor, "callLater", lambda delay, fn: scheduled.append(fn))
    server = FakeServer(20)
    broken = next(iter(server.connections))

    def explode():
        raise RuntimeError("broken connection")

    broken.check_timeouts = explode
    for _ in range(daphne_patch.TIMEOUT_CHECK_SLICES):
        server.timeout_checker()

    assert len(scheduled) == daphne_patch.TIMEOUT_CHECK_SLICES
    assert {c for c in server.connections if server.checks[c] == 1} == set(server.connections) - {
        broken
    }
