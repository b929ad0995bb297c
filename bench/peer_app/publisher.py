"""The load's publisher: a thread of the server process that calls ``send_event``.

``POST /publish?channels=C&rate=R&count=N&stagger=S`` starts it: on each of C
channels (``execution-0`` ...), N events R per second, the channels' first
events spread over S seconds, then the two end events right after each
channel's last one (``bench.schedule``, as the service's load and the bare
consumer's publisher). Each event's data is ``{"seq", "timestamp"}``, the
timestamp taken just before ``send_event``. ``GET /published`` reports, once
done, each channel's send times and any error.
"""

import threading
import time

from django.db import connection
from django.http import HttpResponseBadRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django_eventstream import send_event

from bench.schedule import END_EVENTS, first_ticks

state: dict = {"thread": None, "sent": {}, "errors": []}


def schedule(channels: int, rate: float, count: int, stagger: float) -> list[tuple]:
    """(seconds from the start, channel, seq) of every event, in order."""
    interval = 1 / rate
    return sorted(
        (first + min(n, count - 1) * interval, channel, n + 1)
        for channel, first in enumerate(first_ticks(channels, interval, stagger))
        for n in range(count + END_EVENTS)
    )


def run(plan: list[tuple]) -> None:
    start = time.monotonic()
    try:
        for when, channel, seq in plan:
            time.sleep(max(0.0, start + when - time.monotonic()))
            stamp = time.time()
            try:
                send_event(f"execution-{channel}", "message", {"seq": seq, "timestamp": stamp})
            except Exception as error:  # counted as not sent; the run goes on
                state["errors"].append(f"execution-{channel} {seq}: {error!r}")
                continue
            state["sent"].setdefault(f"execution-{channel}", []).append([seq, stamp])
    finally:
        connection.close()


@csrf_exempt
def publish(request):
    if request.method != "POST" or state["thread"] is not None:
        return HttpResponseBadRequest("POST once, with channels, rate, count and stagger.\n")
    plan = schedule(
        int(request.GET["channels"]),
        float(request.GET["rate"]),
        int(request.GET["count"]),
        float(request.GET["stagger"]),
    )
    state["thread"] = threading.Thread(target=run, args=(plan,), daemon=True)
    state["thread"].start()
    return JsonResponse({"events": len(plan)}, status=202)


def published(request):
    thread = state["thread"]
    done = thread is not None and not thread.is_alive()
    return JsonResponse(
        {"done": done, "sent": state["sent"] if done else {}, "errors": state["errors"]}
    )
