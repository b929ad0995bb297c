"""A served process runs daphne with this project's hooks (``realtime.patches``),
however it is started.

Without them autobahn refuses the application's close with 1009 and the
client sees the connection dropped instead. The other served behaviours only
the hooks give: 1008 and 1009 (``test_security_server``), 4408 for a client
that stops reading and its paced catch-up (``test_slow_consumers``), and
protocol pings spread over the interval (``test_pings``).
"""

import asyncio
import json
import subprocess
import sys

import pytest
import websockets

from bench import processes

pytestmark = pytest.mark.timeout(120)

BIG_FRAME = json.dumps({"type": "ping", "pad": "x" * 70_000})  # over REALTIME_MAX_MESSAGE_BYTES


async def close_of_a_big_frame(ws_url: str, token: str) -> tuple[int, list]:
    headers = {"Authorization": f"Bearer {token}"}
    messages = []
    # Without the hooks nothing closes the socket: the wait runs out instead.
    async with (
        asyncio.timeout(15),
        websockets.connect(f"{ws_url}/api/v1/ws", additional_headers=headers) as ws,
    ):
        await ws.send(BIG_FRAME)
        try:
            async for frame in ws:
                messages.append(json.loads(frame))
        except websockets.ConnectionClosed:
            pass
    return ws.close_code, messages


async def test_daphnes_command_line_serves_with_the_hooks(server):
    code, messages = await close_of_a_big_frame(server.ws_url, server.token)
    assert code == 1009
    assert "REALTIME_MAX_MESSAGE_BYTES" in messages[-1]["message"]


async def test_runserver_serves_with_the_same_hooks(tmp_path):
    """``manage.py runserver`` (daphne's, for development) loads daphne's server
    without its command line: it gets the hooks all the same."""
    env = processes.base_env(DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    token = processes.demo_token(env)
    port = processes.free_port()
    with (tmp_path / "runserver.log").open("w") as log:
        runserver = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
            cwd=processes.ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        processes.wait_for_port(port, runserver)
        code, messages = await close_of_a_big_frame(f"ws://127.0.0.1:{port}", token)
    finally:
        runserver.terminate()
        runserver.wait(timeout=10)
    assert code == 1009
    assert "REALTIME_MAX_MESSAGE_BYTES" in messages[-1]["message"]
