"""Socket security on the real server: tickets, frame limits, idle sockets, the terminal client."""

import asyncio
import io
import json
import random
import urllib.error
import urllib.request

import pytest
import websockets

from executions import cli
from tests.e2e.conftest import serve
from tests.e2e.test_server import create_execution
from tests.factories import chain, node


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for this module's tests (each starts its own executions)."""
    # One (pretend) nginx in front: the client is the rightmost X-Forwarded-For entry.
    env = {
        "REALTIME_IDLE_TIMEOUT": "1",
        "REALTIME_RECHECK_INTERVAL": "0.2",
        "TRUSTED_PROXY_HOPS": "1",
    }
    with serve(tmp_path_factory.mktemp("security"), env) as running:
        yield running


def slow_execution(server, seconds: float) -> str:
    _, workflow = server.request(
        "POST",
        "/api/v1/workflows",
        {"name": "slow", "definition": chain(node("w", "delay", seconds=seconds))},
    )
    status, execution = server.request(
        "POST", "/api/v1/executions", {"workflow_id": workflow["id"]}
    )
    assert status == 201, execution
    return execution["id"]


def ticket_for(server) -> str:
    status, body = server.request("POST", "/api/v1/ws-tickets")
    assert status == 201 and body["expires_in"] == 60, body
    return body["ticket"]


async def messages_and_close(url: str, headers=None, send: list[str] = ()) -> tuple[list, int]:
    messages = []
    async with websockets.connect(url, additional_headers=headers, max_size=None) as ws:
        try:
            # A server that drops the connection may do so while a big frame
            # is still being written.
            for frame in send:
                await ws.send(frame)
            async for frame in ws:
                messages.append(json.loads(frame))
        except websockets.ConnectionClosed:
            pass
    return messages, ws.close_code


async def test_a_browser_opens_the_stream_with_a_one_time_ticket(server):
    execution = create_execution(server, {"n": 1})
    url = f"{server.ws_url}/api/v1/ws/executions/{execution['id']}"
    ticket = ticket_for(server)

    messages, code = await messages_and_close(f"{url}?ticket={ticket}&last_seq=0")
    assert code == 1000 and messages[-1]["status"] == "completed"

    for query in (f"ticket={ticket}", f"token={server.token}", f"access_token={server.token}"):
        messages, code = await messages_and_close(f"{url}?{query}")
        assert code == 4401 and messages[0]["type"] == "error"


async def test_big_frames_close_with_1009_floods_with_1008_and_daphnes_own_limit_holds(server):
    url = f"{server.ws_url}/api/v1/ws/executions/{slow_execution(server, 30)}"
    headers = {"Authorization": f"Bearer {server.token}"}
    big = json.dumps({"type": "ping", "pad": "x" * 70_000})
    messages, code = await messages_and_close(url, headers, [big])
    assert code == 1009
    assert "REALTIME_MAX_MESSAGE_BYTES" in messages[-1]["message"]

    messages, code = await messages_and_close(url, headers, ['{"type": "ping"}'] * 21)
    assert code == 1008
    # The execution's own events (its start, progress) may interleave.
    answers = [m["type"] for m in messages if m["type"] in ("pong", "error")]
    assert answers == ["pong"] * 20 + ["error"]

    huge = json.dumps({"type": "ping", "pad": "x" * (2 * 1024 * 1024)})
    _, code = await messages_and_close(url, headers, [huge])
    # Refused by daphne itself before the application sees it: autobahn drops
    # the connection (1006), or closes with 1009 where it is set to.
    assert code in (1006, 1009)


async def test_a_silent_socket_is_closed_with_4410_and_a_pinging_one_is_not(server):
    url = f"{server.ws_url}/api/v1/ws/executions/{slow_execution(server, 30)}"
    headers = {"Authorization": f"Bearer {server.token}"}

    messages, code = await asyncio.wait_for(messages_and_close(url, headers), 10)
    assert code == 4410
    assert messages[-1]["type"] == "error" and "REALTIME_IDLE_TIMEOUT" in messages[-1]["message"]

    async with websockets.connect(url, additional_headers=headers) as ws:
        await ws.recv()  # the snapshot
        for _ in range(10):  # 2.5 s, two and a half idle limits
            await asyncio.sleep(0.25)
            await ws.send('{"type": "ping"}')
            while json.loads(await ws.recv())["type"] != "pong":
                pass  # progress of the running delay


def test_the_terminal_client_pings_and_follows_a_long_execution(server, monkeypatch):
    monkeypatch.setattr(cli, "PING_SECONDS", 0.25)
    execution_id = slow_execution(server, 2.5)  # longer than the idle limit
    out = io.StringIO()

    last = cli.follow(server.url, server.token, execution_id, out)

    assert last["status"] == "completed"
    assert "completed" in out.getvalue()
    assert "pong" not in out.getvalue()


def token_request(server, username: str, forwarded_for: str) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"{server.url}/api/v1/auth/token",
        data=json.dumps({"username": username, "password": "wrong"}).encode(),
        headers={"Content-Type": "application/json", "X-Forwarded-For": forwarded_for},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_token_requests_are_throttled_per_client_whatever_it_forges(server):
    # As nginx passes them on: what the client wrote, then the address it came from.
    answers = [
        token_request(server, f"nobody{n}", f"{random_address()}, 192.0.2.10") for n in range(11)
    ]

    assert [status for status, _ in answers] == [400] * 10 + [429]
    assert "API_TOKEN_RATE" in answers[-1][1]["detail"]
    # Another client behind the same proxy is served.
    assert token_request(server, "nobody", "192.0.2.11")[0] == 400


def random_address() -> str:
    return ".".join(str(random.randrange(1, 255)) for _ in range(4))


async def test_handshakes_past_the_rate_get_an_error_and_4429_from_the_real_server(tmp_path):
    with serve(tmp_path, {"REALTIME_HANDSHAKE_RATE": "3/minute"}) as limited:
        url = f"{limited.ws_url}/api/v1/ws/executions/{slow_execution(limited, 30)}"
        headers = {"Authorization": f"Bearer {limited.token}"}
        for _ in range(3):
            async with websockets.connect(url, additional_headers=headers) as ws:
                assert json.loads(await ws.recv())["type"] == "status"

        messages, code = await asyncio.wait_for(messages_and_close(url, headers), 10)

    assert code == 4429
    assert [m["type"] for m in messages] == ["error"]
    assert "REALTIME_HANDSHAKE_RATE" in messages[0]["message"]
