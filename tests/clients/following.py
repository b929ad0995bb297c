"""Follow an execution to its end with either client, and keep what a test checks."""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from workflow_push import AsyncClient, Client, FollowOptions


@dataclass
class Followed:
    events: list[dict]
    stream: object  # ExecutionStream or AsyncExecutionStream
    states: list[tuple[str, dict]] = field(default_factory=list)
    #: Every HTTP request the client sent (REST, event streams, long polls), in order.
    requests: list[str] = field(default_factory=list)

    def transports_live(self) -> list[str]:
        return [detail["transport"] for state, detail in self.states if state == "live"]


def follow_all(
    kind: str,
    url: str,
    token: str,
    execution_id: str,
    *,
    last_seq: int | None = None,
    on_event: Callable[[dict], None] = lambda event: None,
    **options,
) -> Followed:
    """Every event of one follow, with the ``Client`` (``kind`` "sync") or the
    ``AsyncClient`` ("async"); ``on_event`` sees each as it comes."""
    followed = Followed(events=[], stream=None)
    chosen = FollowOptions(**options)

    def on_state(state: str, detail: dict) -> None:
        followed.states.append((state, detail))

    if kind == "sync":

        def sent(request: httpx.Request) -> None:
            followed.requests.append(str(request.url))

        with (
            httpx.Client(event_hooks={"request": [sent]}) as http,
            Client(url, token, http=http, follow_options=chosen) as client,
        ):
            followed.stream = client.follow(execution_id, last_seq=last_seq, on_state=on_state)
            for event in followed.stream:
                followed.events.append(event)
                on_event(event)
        return followed

    async def run() -> None:
        async def sent(request: httpx.Request) -> None:
            followed.requests.append(str(request.url))

        async with (
            httpx.AsyncClient(event_hooks={"request": [sent]}) as http,
            AsyncClient(url, token, http=http, follow_options=chosen) as client,
        ):
            followed.stream = client.follow(execution_id, last_seq=last_seq, on_state=on_state)
            async for event in followed.stream:
                followed.events.append(event)
                await asyncio.to_thread(on_event, event)

    asyncio.run(run())
    return followed


def stored(live, execution_id: str) -> list[dict]:
    """The execution's events as the events endpoint serves them."""
    status, page = live.request("GET", f"/api/v1/executions/{execution_id}/events?limit=1000")
    assert status == 200, page
    return page["results"]
