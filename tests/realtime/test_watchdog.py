"""The watchdog's count of each user's sockets, for the per-user cap."""

from realtime.longpoll import EventWaiter
from realtime.watchdog import LogWatchdog


class Socket:
    session_key = None

    def __init__(self, user_id):
        self.user_id = user_id

    def execution_ids(self) -> set:
        return set()


async def test_long_polls_are_watched_but_take_no_socket_slot():
    watchdog = LogWatchdog()
    first, second = Socket(7), Socket(7)
    waiting = EventWaiter("e1", 0, user_id=7, owner_id=7)
    watchdog.watch(waiting)
    assert watchdog.admit(first, limit=1)  # the long-poll did not take the one slot
    assert not watchdog.admit(second, limit=1)
    assert watchdog.subscribers == {first, waiting}
    watchdog.discard(waiting)
    assert watchdog.sockets_per_user == {7: 1}
    watchdog.discard(first)
    watchdog.discard(first)  # twice: nothing more given back
    assert watchdog.sockets_per_user == {} and watchdog.subscribers == set()
    watchdog._task.cancel()
