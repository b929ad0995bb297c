"""The end of a stream on the real server: a client still busy reading a burst
when the server closes gets every event, then the close frame.

The close frame queues behind what the client has not read yet. Were the
server to drop the connection after autobahn's own 1 s close timeout, what
it still held would be thrown away and the client would see the connection
reset with the end of its stream missing.
"""

import asyncio

import pytest
import websockets

from tests.e2e.conftest import serve
from tests.e2e.test_server import stored_events
from tests.e2e.test_slow_consumers import drain, read_all, url_of
from tests.factories import chain, node

NODES = 40
PAD = 40_000  # characters of input, carried by every node's completed event: ~1.6 MB a stream
READ_AFTER = 2.5  # seconds the client is busy after the stream ended, before it reads again


def create_execution(server) -> str:
    definition = chain(
        node("wait", "delay", seconds=1),  # the socket is open before the burst
        *[node(f"step{i}", "delay", seconds=0) for i in range(NODES)],
    )
    status, workflow = server.request(
        "POST", "/api/v1/workflows", {"name": "burst", "definition": definition}
    )
    assert status == 201, workflow
    status, execution = server.request(
        "POST",
        "/api/v1/executions",
        {"workflow_id": workflow["id"], "input_data": {"pad": "x" * PAD}},
    )
    assert status == 201, execution
    return execution["id"]


async def busy_client_reads_the_end(server) -> tuple[list[dict], int | None, int]:
    """Open a socket, leave it unread until well after the stream ended, then read it all."""
    execution_id = create_execution(server)
    ws = await websockets.connect(
        url_of(server, execution_id),
        additional_headers={"Authorization": f"Bearer {server.token}"},
        max_queue=1,  # the client library stops reading the socket: the backlog stays server-side
        max_size=None,
    )
    await read_all(server, execution_id)  # a second socket, closed when the stream ends
    await asyncio.sleep(READ_AFTER)
    messages, close_code = await drain(ws)
    return messages, close_code, len(stored_events(server, execution_id))


def env(close_timeout: str) -> dict:
    return {
        "REALTIME_CLOSE_TIMEOUT": close_timeout,
        # The backlog is under the send buffer, so the socket is never paced nor closed as slow.
        "REALTIME_SEND_BUFFER_BYTES": str(16 * 1024 * 1024),
        "REALTIME_SEND_TIMEOUT": "30",
        "EXECUTIONS_EVENT_OUTPUT_LIMIT": str(PAD + 100),
    }


async def test_a_busy_client_gets_the_whole_stream_and_the_close_frame(tmp_path):
    with serve(tmp_path, env("10")) as server:
        messages, close_code, stored = await busy_client_reads_the_end(server)

    assert close_code == 1000
    assert stored > 2 * NODES
    assert [m["seq"] for m in messages] == list(range(1, stored + 1))
    assert (messages[-1]["type"], messages[-1]["status"]) == ("status", "completed")


async def test_with_a_one_second_close_timeout_the_same_client_loses_the_end(tmp_path):
    """The failure the setting prevents, reproduced: proof the scenario above is a real one."""
    with serve(tmp_path, env("1")) as server:
        messages, close_code, stored = await busy_client_reads_the_end(server)

    assert close_code != 1000
    assert len(messages) < stored


pytestmark = pytest.mark.embedded
