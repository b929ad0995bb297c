"""Protocol pings on the real server: sockets that connected together are not
all pinged in the same turn of the event loop.

daphne pings a socket that has sent nothing for ``--ping-interval`` seconds,
counted from when it connected, and checks every socket at once every 2 s.
Without the spread, a page of subscribers (or a reconnect storm) would get a
thousand pings in one check, every interval, for as long as it stays open.
"""

import asyncio
import base64
import os

import pytest

from tests.e2e.conftest import serve
from tests.factories import node

pytestmark = pytest.mark.embedded

INTERVAL = 4  # seconds, daphne's --ping-interval for this test
CHECK_PERIOD = 2  # seconds between daphne's checks of every socket
SOCKETS = 30

PING = 0x9


async def seconds_to_first_ping(port: int, path: str, token: str) -> float:
    """Open a WebSocket by hand (the client libraries answer pings unseen) and
    time the first ping frame after the handshake."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"Authorization: Bearer {token}\r\n\r\n".encode()
    )
    status_line = (await reader.readuntil(b"\r\n\r\n")).split(b"\r\n", 1)[0]
    assert b" 101 " in status_line, status_line
    loop = asyncio.get_running_loop()
    opened = loop.time()
    try:
        while True:
            first, second = await reader.readexactly(2)
            length = second & 0x7F  # frames from a server are not masked
            if length == 126:
                length = int.from_bytes(await reader.readexactly(2), "big")
            elif length == 127:
                length = int.from_bytes(await reader.readexactly(8), "big")
            await reader.readexactly(length)
            if first & 0x0F == PING:
                return loop.time() - opened
    finally:
        writer.close()


async def test_sockets_opened_together_get_their_pings_spread_over_the_interval(tmp_path):
    with serve(tmp_path, {}) as server:
        server.stop()
        server.process.ping_interval = INTERVAL
        server.start()
        definition = {"nodes": [node("wait", "delay", seconds=60)], "edges": []}
        _, workflow = server.request(
            "POST", "/api/v1/workflows", {"name": "long", "definition": definition}
        )
        _, execution = server.request(
            "POST", "/api/v1/executions", {"workflow_id": workflow["id"], "input_data": {}}
        )
        port = int(server.ws_url.rsplit(":", 1)[1])
        path = f"/api/v1/ws/executions/{execution['id']}"
        delays = await asyncio.wait_for(
            asyncio.gather(
                *[seconds_to_first_ping(port, path, server.token) for _ in range(SOCKETS)]
            ),
            timeout=INTERVAL + CHECK_PERIOD + 10,
        )

    # Every socket is still pinged within one interval and one check...
    assert max(delays) <= INTERVAL + CHECK_PERIOD + 1, delays
    # ...but not all in the same check: all of them together would be the
    # first check after the interval had passed for every socket.
    assert max(delays) - min(delays) >= CHECK_PERIOD - 0.5, sorted(delays)
