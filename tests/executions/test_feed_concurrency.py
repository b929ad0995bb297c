"""The executions feed misses no change that concurrent writers commit out of order.

Four writer threads, each with its own PostgreSQL connection, move their
executions through start, progress and completion. In every round one of
them (the holder) writes its change first and keeps its transaction open
while the other three commit theirs: the holder's transaction id is the
lowest, but it commits last. A reader follows with ``feed_read`` and its last
cursor, at fixed points and, in another thread, as fast as it can.
"""

import queue
import threading
from collections.abc import Callable

import pytest
from django.db import connection, connections, transaction

from executions import services
from executions.feed import FeedFilter, executions_for_feed, feed_read, feed_state
from executions.models import EventType, Execution, ExecutionEvent
from tests.factories import make_execution, make_user, make_workflow

# SQLite's writers take turns (executions/sqlite): its transactions never overlap.
pytestmark = [
    pytest.mark.services,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("no_dispatch"),
]

WRITERS = 4
PER_WRITER = 3
# Each execution: started, at 30%, at 60%, completed: one step a round.
STEPS = 4
ROUNDS = PER_WRITER * STEPS
EVERYTHING = FeedFilter()
WAIT = 30  # seconds; only a broken test waits this long


@pytest.fixture(autouse=True)
def no_push(monkeypatch):
    monkeypatch.setattr("realtime.signals.publish_many", lambda messages: None)


def step(execution_id, index: int) -> None:
    if index == 0:
        services.execution_start(execution_id=execution_id)
    elif index == STEPS - 1:
        services.execution_complete(execution_id=execution_id, result=None)
    else:
        services.execution_progress(execution_id=execution_id, progress=30 * index)


class Writer:
    """A thread with its own connection that runs what it is sent, one at a time."""

    def __init__(self) -> None:
        self.orders: queue.Queue = queue.Queue()
        self.wrote = threading.Event()
        self.release = threading.Event()
        self.done = threading.Event()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def run(self, write: Callable[[], None], *, hold: bool = False) -> None:
        """Start ``write``: committed at once, or (``hold``) kept open until ``commit()``."""
        self.wrote.clear()
        self.release.clear()
        self.done.clear()
        self.orders.put((write, hold))

    def commit(self) -> None:
        self.release.set()

    def wait(self, event: threading.Event) -> None:
        assert event.wait(WAIT), "a writer did not get there"
        assert not self.errors, self.errors

    def stop(self) -> None:
        self.orders.put(None)
        self.thread.join(WAIT)

    def _run(self) -> None:
        try:
            while (order := self.orders.get()) is not None:
                write, hold = order
                try:
                    with transaction.atomic():
                        write()
                        self.wrote.set()
                        if hold:
                            assert self.release.wait(WAIT)
                except BaseException as exc:
                    self.errors.append(exc)
                finally:
                    self.wrote.set()
                    self.done.set()
        finally:
            connections.close_all()


class Reader:
    """Follows the feed with its last cursor; keeps every state it was given, in order."""

    def __init__(self, user) -> None:
        self.user = user
        page = feed_read(user, EVERYTHING)
        self.cursor = page.cursor
        self.seen: dict[str, list[dict]] = {}
        self._keep(page.states)

    def read(self) -> set[str]:
        """Read until nothing more waits; the ids of the executions read."""
        read: set[str] = set()
        while True:
            page = feed_read(self.user, EVERYTHING, self.cursor, limit=5)
            self.cursor = page.cursor
            self._keep(page.states)
            read |= {state["id"] for state in page.states}
            if not page.more:
                return read

    def _keep(self, states: list[dict]) -> None:
        for state in states:
            self.seen.setdefault(state["id"], []).append(state)


class NaiveReader:
    """What a cursor of the newest mark (a transaction id) or the newest event time
    seen would read: everything above it."""

    def __init__(self, by: str) -> None:
        self.by = by
        self.high = max(Execution.objects.values_list(by, flat=True))

    def read(self) -> set[str]:
        rows = list(Execution.objects.filter(**{f"{self.by}__gt": self.high}).values("id", self.by))
        if rows:
            self.high = max(row[self.by] for row in rows)
        return {str(row["id"]) for row in rows}


def check_states(seen: dict[str, list[dict]], executions: list[Execution]) -> None:
    """Each execution's last state is its final one, no state is older than one
    before it, and each is a state the execution really had."""
    final = {str(e.id): feed_state(e) for e in executions_after(executions)}
    assert set(seen) == set(final)
    for execution_id, states in seen.items():
        assert states[-1] == final[execution_id]
        seqs = [state["last_seq"] for state in states]
        assert seqs == sorted(seqs), execution_id
        for state in states:
            assert state_at(execution_id, state["last_seq"]) == (
                state["status"],
                state["progress"],
                state["message"],
            )


def executions_after(executions: list[Execution]) -> list[Execution]:
    return list(executions_for_feed().filter(id__in=[e.id for e in executions]))


def state_at(execution_id: str, seq: int) -> tuple:
    """The execution's state as of its event ``seq``: its latest status event's."""
    event = (
        ExecutionEvent.objects.filter(
            execution_id=execution_id, type=EventType.STATUS, seq__lte=seq
        )
        .order_by("-seq")
        .first()
    )
    return event.data["status"], event.data["progress"], event.data["message"]


@pytest.fixture
def setting():
    """A user's executions, ``PER_WRITER`` for each of ``WRITERS`` writers, and the writers."""
    assert connection.vendor == "postgresql"
    user = make_user()
    workflow = make_workflow(user)
    owned = [[make_execution(user, workflow) for _ in range(PER_WRITER)] for _ in range(WRITERS)]
    writers = [Writer() for _ in range(WRITERS)]
    yield user, owned, writers
    for writer in writers:
        writer.commit()
        writer.stop()


def play_round(number: int, owned, writers, between: Callable[[], None]) -> str:
    """One round: the holder writes first and commits last, after ``between``; the
    id of the execution it changed."""
    holder = number % WRITERS
    execution, index = number // STEPS, number % STEPS
    held = owned[holder][execution].id
    writers[holder].run(lambda: step(held, index), hold=True)
    writers[holder].wait(writers[holder].wrote)
    others = [w for w in range(WRITERS) if w != holder]
    for w in others:
        target = owned[w][execution].id
        writers[w].run(lambda target=target: step(target, index))
    for w in others:
        writers[w].wait(writers[w].done)
    between()
    writers[holder].commit()
    writers[holder].wait(writers[holder].done)
    return str(held)


def test_four_writers_committing_out_of_order_lose_no_change_on_the_feed(setting):
    user, owned, writers = setting
    executions = [e for mine in owned for e in mine]
    reader = Reader(user)
    racing = RacingReader(user)
    hidden_then_read = []

    try:
        for number in range(ROUNDS):
            held = play_round(number, owned, writers, between=lambda: reader.read())
            # The holder's change has the lowest transaction id of the round.
            hidden_then_read.append(held in reader.read())
    finally:
        racing.stop()
    reader.read()

    assert all(hidden_then_read)
    check_states(reader.seen, executions)
    assert not racing.errors, racing.errors
    assert racing.reads > ROUNDS
    check_states(racing.seen, executions)


class RacingReader(Reader):
    """A reader in a thread of its own that reads as often as it can while the
    writers write, then once more when they are done."""

    def __init__(self, user) -> None:
        super().__init__(user)
        self.stopping = threading.Event()
        self.errors: list[BaseException] = []
        self.reads = 0
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(WAIT)

    def _loop(self) -> None:
        try:
            # Paced a little, so that two cores leave the writers their turns.
            while not self.stopping.wait(0.002):
                self.read()
                self.reads += 1
            self.read()
        except BaseException as exc:
            self.errors.append(exc)
        finally:
            connections.close_all()


@pytest.mark.parametrize("by", ["feed_mark", "last_event_at"])
def test_a_cursor_of_the_newest_id_or_time_seen_misses_those_changes(setting, by):
    user, owned, writers = setting
    executions = [e for mine in owned for e in mine]
    naive = NaiveReader(by)
    reader = Reader(user)
    missed = []

    for number in range(ROUNDS):
        held = play_round(number, owned, writers, between=lambda: (naive.read(), reader.read()))
        missed.append(held not in naive.read())
        assert held in reader.read()

    # Every round, the holder's change committed below what the others had shown.
    assert all(missed)
    # And the last one was its execution's last change: the naive reader never
    # learns that it completed.
    last = str(owned[(ROUNDS - 1) % WRITERS][PER_WRITER - 1].id)
    assert Execution.objects.get(id=last).status == "completed"
    check_states(reader.seen, executions)


def test_a_writer_holding_the_cursor_back_means_repeats_not_gaps(setting):
    user, owned, writers = setting
    reader = Reader(user)
    first = owned[0][0].id
    writers[0].run(lambda: step(first, 0), hold=True)
    writers[0].wait(writers[0].wrote)
    for w in range(1, WRITERS):
        target = owned[w][0].id
        writers[w].run(lambda target=target: step(target, 0))
        writers[w].wait(writers[w].done)

    once, again = reader.read(), reader.read()
    writers[0].commit()
    writers[0].wait(writers[0].done)
    after = reader.read()

    others = {str(owned[w][0].id) for w in range(1, WRITERS)}
    # While the first writer's transaction is open, the cursor stays below it:
    # the others' changes come again, the same, until it ends.
    assert others <= once and others <= again
    assert str(first) not in once | again
    assert str(first) in after
    for execution_id in others:
        states = reader.seen[execution_id][1:]  # after the first read's backlog
        assert len(states) >= 2
        assert len({state["last_seq"] for state in states}) == 1
