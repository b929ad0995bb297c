"""When each execution of the load records its events (shared by the service's
load and the bare consumer's publisher, so that both carry the same messages)."""

# At an execution's end, right after its last tick: the node's ``completed``
# and the terminal ``status``, recorded together.
END_EVENTS = 2


def first_ticks(executions: int, interval: float, stagger: float) -> list[float]:
    """Each execution's first tick, in seconds from the load's start.

    The executions' ticks are spread evenly over one tick interval, and their
    first ticks (so their ends too) over ``stagger`` seconds, a whole number of
    intervals apart.
    """
    intervals = max(1, round(stagger / interval))
    return [(i % intervals) * interval + i * interval / executions for i in range(executions)]
