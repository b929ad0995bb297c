"""``AsyncClient``: the REST API and live follows, for asyncio (``Client`` is the blocking one)."""

import ssl
from collections.abc import AsyncIterator
from typing import Any, cast

import httpx

from workflow_push import _rest
from workflow_push._rest import Call
from workflow_push._stream import StateListener
from workflow_push.async_follow import AsyncExecutionStream
from workflow_push.errors import Unreachable
from workflow_push.options import FollowOptions
from workflow_push.types import Id, JSONObject


class AsyncClient:
    """A client of one server, e.g. ``AsyncClient("https://workflows.example.com", token=...)``.

    REST calls return the server's JSON as dicts and raise ``ApiError`` (an error
    status) or ``Unreachable`` (no answer). Listings are async iterators that read the
    pages as they go. Close it (``await client.aclose()``, or ``async with``) when done.
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        headers: dict[str, str] | None = None,
        verify: ssl.SSLContext | bool = True,
        follow_options: FollowOptions | None = None,
        http: httpx.AsyncClient | None = None,
    ):
        self.base_url = url.rstrip("/")
        self.token = token
        self.headers = _rest.headers(token, headers)
        self.verify = verify
        self.follow_options = follow_options or FollowOptions()
        self._owns_http = http is None
        self.http = http or httpx.AsyncClient(timeout=timeout, verify=verify)

    async def aclose(self) -> None:
        """Close the connections it keeps (not an ``http`` client that was passed in)."""
        if self._owns_http:
            await self.http.aclose()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # Workflows

    def list_workflows(self) -> AsyncIterator[JSONObject]:
        """Every workflow you may see, page by page."""
        return self._each(_rest.list_workflows())

    async def get_workflow(self, workflow_id: Id) -> JSONObject:
        return await self._object(_rest.get_workflow(workflow_id))

    async def create_workflow(
        self,
        name: str,
        definition: JSONObject,
        *,
        description: str = "",
        retry_on_worker_loss: bool | None = None,
    ) -> JSONObject:
        call = _rest.create_workflow(name, definition, description, retry_on_worker_loss)
        return await self._object(call)

    async def update_workflow(
        self,
        workflow_id: Id,
        *,
        name: str | None = None,
        definition: JSONObject | None = None,
        description: str | None = None,
    ) -> JSONObject:
        """Change the fields given; executions already started keep their definition."""
        fields = {"name": name, "definition": definition, "description": description}
        return await self._object(_rest.update_workflow(workflow_id, fields))

    async def delete_workflow(self, workflow_id: Id) -> None:
        await self.send(_rest.delete_workflow(workflow_id))

    # Executions

    async def create_execution(
        self, workflow_id: Id, input_data: JSONObject | None = None, tags: list[str] | None = None
    ) -> JSONObject:
        """Start an execution of the workflow's current definition."""
        return await self._object(_rest.create_execution(workflow_id, input_data, tags))

    async def get_execution(self, execution_id: Id) -> JSONObject:
        """The execution with its definition, its nodes and their streams, its whole result."""
        return await self._object(_rest.get_execution(execution_id))

    def list_executions(
        self, *, status: str | None = None, workflow_id: Id | None = None, tag: str | None = None
    ) -> AsyncIterator[JSONObject]:
        """Every execution you may see (staff: all) that matches, newest first, page by page."""
        return self._each(_rest.list_executions(status, workflow_id, tag))

    async def cancel(self, execution_id: Id) -> JSONObject:
        """Ask the execution to stop; ``ApiError`` 409 if it has ended already."""
        return await self._object(_rest.cancel(execution_id))

    def events(self, execution_id: Id, after: int = 0) -> AsyncIterator[JSONObject]:
        """The stored events with a seq over ``after``, oldest first, page by page."""
        return self._each(_rest.events(execution_id, after))

    def follow(
        self,
        execution_id: Id,
        *,
        last_seq: int | None = None,
        options: FollowOptions | None = None,
        on_state: StateListener | None = None,
    ) -> AsyncExecutionStream:
        """The execution's events live: ``async for event in client.follow(id): ...``.

        Without ``last_seq`` the first event is a ``status`` snapshot of its current
        state; with it, every event after that seq. Each event comes once, in seq
        order, and the iteration ends after the terminal status. ``on_state`` is
        called with each change of the connection (see ``AsyncExecutionStream``).
        """
        return AsyncExecutionStream(
            self,
            str(execution_id),
            last_seq=last_seq,
            options=options or self.follow_options,
            on_state=on_state,
        )

    # Requests

    async def send(self, call: Call, *, timeout: httpx.Timeout | None = None) -> Any:
        """Send one call; its JSON answer."""
        url = _rest.url(self.base_url, call.path)
        try:
            response = await self.http.request(
                call.method,
                url,
                params=call.params,
                json=call.body,
                headers=self.headers,
                timeout=timeout or httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.TransportError as exc:
            raise Unreachable(f"{call.method} {url}: {exc!r}") from exc
        return _rest.answer(call, response)

    async def _object(self, call: Call) -> JSONObject:
        return cast(JSONObject, await self.send(call))

    async def _each(self, call: Call) -> AsyncIterator[JSONObject]:
        page = await self.send(call)
        while True:
            for item in page["results"]:
                yield item
            url = _rest.next_url(self.base_url, page.get("next"))
            if url is None:
                return
            page = await self.send(Call("GET", url))
