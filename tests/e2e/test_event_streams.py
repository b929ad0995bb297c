"""Server-Sent Events and long-poll on the real server: the socket's stream, seq by seq."""

import asyncio
import json
import re
import socket
import time

import httpx
import pytest

from tests.e2e.conftest import serve
from tests.e2e.test_server import collect, stored_events
from tests.factories import chain, node

pytestmark = pytest.mark.embedded

BUFFER_LIMIT = 128 * 1024
OUTPUT_SIZE = 20_000


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    env = {
        "REALTIME_SSE_HEARTBEAT": "0.5",
        "REALTIME_MAX_SUBSCRIPTIONS": "20",
        "REALTIME_SEND_BUFFER_BYTES": str(BUFFER_LIMIT),
        "REALTIME_SEND_TIMEOUT": "1",
        "EXECUTIONS_EVENT_OUTPUT_LIMIT": str(OUTPUT_SIZE + 100),
    }
    with serve(tmp_path_factory.mktemp("sse"), env) as running:
        yield running


def start(server, definition: dict, input_data: dict | None = None, count: int = 1) -> list[str]:
    status, workflow = server.request(
        "POST", "/api/v1/workflows", {"name": "streamed", "definition": definition}
    )
    assert status == 201, workflow
    ids = []
    for _ in range(count):
        status, execution = server.request(
            "POST",
            "/api/v1/executions",
            {"workflow_id": workflow["id"], "input_data": input_data or {}},
        )
        assert status == 201, execution
        ids.append(execution["id"])
    return ids


def steps(count: int, seconds: float = 0.05) -> dict:
    return chain(
        node("wait", "delay", seconds=0.5),
        *[node(f"step{i}", "delay", seconds=seconds) for i in range(count)],
    )


def headers(server, **extra) -> dict:
    return {"Authorization": f"Bearer {server.token}", **extra}


class EventStream:
    """The events of one SSE response, parsed as a browser's EventSource would."""

    def __init__(self):
        self.events: list[dict] = []
        self.comments = 0
        self._fields: dict = {}

    def feed_line(self, line: str) -> dict | None:
        if line == "":
            fields, self._fields = self._fields, {}
            if "data" in fields:
                event = {"id": fields.get("id"), "event": fields.get("event", "message")}
                event["data"] = json.loads(fields["data"])
                self.events.append(event)
                return event
            return None
        if line.startswith(":"):
            self.comments += 1
            return None
        name, _, value = line.partition(":")
        self._fields[name] = value.removeprefix(" ")
        return None


async def read_stream(client, url: str, *, stop_after: int | None = None, **kwargs):
    """(status, response headers, parsed stream) of one SSE request, read to its end
    (or until ``stop_after`` events, then dropped)."""
    stream = EventStream()
    async with client.stream("GET", url, **kwargs) as response:
        if response.status_code != 200:
            await response.aread()
            return response.status_code, response.headers, json.loads(response.content)
        async for line in response.aiter_lines():
            if stream.feed_line(line) is not None and stop_after == len(stream.events):
                break
    return response.status_code, response.headers, stream


def messages_of(stream: EventStream) -> list[dict]:
    return [event["data"] for event in stream.events]


async def test_the_event_stream_is_the_sockets_stream_seq_by_seq(server):
    [execution_id] = start(server, steps(8))
    url = f"/api/v1/executions/{execution_id}/stream?last_seq=0"
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        (status, response_headers, stream), (socket_messages, code) = await asyncio.gather(
            read_stream(client, url, headers=headers(server)),
            collect(server, execution_id, "?last_seq=0"),
        )
        _, _, from_now = await read_stream(
            client, f"/api/v1/executions/{execution_id}/stream", headers=headers(server)
        )

    assert status == 200 and code == 1000
    assert response_headers["content-type"].startswith("text/event-stream")
    assert response_headers["cache-control"] == "no-cache"
    assert response_headers["x-accel-buffering"] == "no"
    sent = messages_of(stream)
    assert sent == socket_messages  # the same messages, seq by seq
    assert [m["seq"] for m in sent] == [e["seq"] for e in stored_events(server, execution_id)]
    assert sent[-1]["status"] == "completed"  # terminal last, then the response ended
    assert [e["id"] for e in stream.events] == [str(m["seq"]) for m in sent]
    assert [e["event"] for e in stream.events] == [m["type"] for m in sent]
    assert stream.comments >= 1  # the heartbeat (every 0.5 s here) while the run waited
    # Without a resume: the snapshot, which for an ended run is all there is.
    [snapshot] = messages_of(from_now)
    assert snapshot["type"] == "status" and snapshot["seq"] == sent[-1]["seq"]


async def test_last_event_id_resumes_exactly_after_a_dropped_connection(server):
    [execution_id] = start(server, steps(10))
    url = f"/api/v1/executions/{execution_id}/stream?last_seq=0"
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        _, _, head = await read_stream(client, url, stop_after=5, headers=headers(server))
        last_id = head.events[-1]["id"]
        _, _, rest = await read_stream(
            client, url, headers=headers(server, **{"Last-Event-ID": last_id})
        )

    seqs = [m["seq"] for m in messages_of(head) + messages_of(rest)]
    stored = [e["seq"] for e in stored_events(server, execution_id)]
    assert seqs == stored  # every event once, in order, across the reconnect
    assert messages_of(rest)[-1]["status"] == "completed"


async def test_refusals_are_http_errors_before_the_stream_starts(server):
    [execution_id] = start(server, steps(1))
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        path = f"/api/v1/executions/{execution_id}/stream"
        unknown = "/api/v1/executions/00000000-0000-0000-0000-000000000000/stream"
        cases = {
            "anonymous": (path, {}),
            "unknown": (unknown, headers(server)),
            "bad resume": (path, headers(server, **{"Last-Event-ID": "soon"})),
            "bad ticket": (path + "?ticket=nope", {}),
        }
        answers = {
            name: await read_stream(client, url, headers=given)
            for name, (url, given) in cases.items()
        }
        posted = await client.post(path, headers=headers(server))

    assert {name: (a[0], a[2]["code"]) for name, a in answers.items()} == {
        "anonymous": (401, 4401),
        "unknown": (404, 4404),
        "bad resume": (400, 4400),
        "bad ticket": (401, 4401),
    }
    assert "Authorization: Bearer" in answers["anonymous"][2]["detail"]
    assert "last_seq must be a non-negative integer" in answers["bad resume"][2]["detail"]
    assert posted.status_code == 405


@pytest.mark.usefixtures("compiled_messages")
async def test_a_refusal_is_in_the_language_of_the_request(server):
    [execution_id] = start(server, steps(1))
    chinese = {"Accept-Language": "zh-CN,zh;q=0.9"}
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        path = f"/api/v1/executions/{execution_id}/stream"
        anonymous = await read_stream(client, path, headers=chinese)
        many = "/api/v1/stream?executions=a,b"
        mismatch = await read_stream(
            client, many, headers=headers(server, **{"Last-Event-ID": "1;"}, **chinese)
        )

    assert (anonymous[0], anonymous[2]["code"]) == (401, 4401)
    assert anonymous[2]["detail"].startswith("需要身份验证：请发送 'Authorization: Bearer")
    assert (mismatch[0], mismatch[2]["code"]) == (400, 4400)
    assert mismatch[2]["detail"].startswith("Last-Event-ID 与此事件流不符")


async def test_a_one_time_ticket_opens_a_stream_once(server):
    [execution_id] = start(server, steps(1))
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        ticket = (await client.post("/api/v1/ws-tickets", headers=headers(server))).json()
        url = f"/api/v1/executions/{execution_id}/stream?ticket={ticket['ticket']}"
        status, _, stream = await read_stream(client, url)
        again, _, body = await read_stream(client, url)

    assert status == 200 and messages_of(stream)[-1]["status"] == "completed"
    assert (again, body["code"]) == (401, 4401)


def last_id(stream: EventStream) -> str:
    """What a browser sends as Last-Event-ID: the id of the last event that had one."""
    return [event["id"] for event in stream.events if event["id"] is not None][-1]


async def read_many(client, url: str, ids: list[str], *, stop_after=None, **kwargs):
    """A stream of many executions, until each subscription ended and the feed showed
    each execution (or ``stop_after`` events)."""
    stream = EventStream()
    ended: set[str] = set()
    fed: set[str] = set()
    async with client.stream("GET", url, **kwargs) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            event = stream.feed_line(line)
            if event is None:
                continue
            message = event["data"]
            if message["type"] == "unsubscribed" and message.get("reason") == "ended":
                ended.add(message["execution_id"])
            if message["type"] == "execution":
                fed.add(message["execution"]["id"])
            if len(stream.events) == stop_after or ended == fed == set(ids):
                break
    return stream


async def test_one_stream_for_many_executions_and_the_feed_resumes_each_part(server):
    ids = start(server, steps(6), count=2)
    url = f"/api/v1/stream?executions={','.join(ids)}&feed=executions&status=completed"
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        head = await read_many(client, url, ids, stop_after=6, headers=headers(server))
        resumed = headers(server, **{"Last-Event-ID": last_id(head)})
        rest = await read_many(client, url, ids, headers=resumed)

    everything = messages_of(head) + messages_of(rest)
    for execution_id in ids:
        stored = [e["seq"] for e in stored_events(server, execution_id)]
        mine = [m for m in everything if m.get("execution_id") == execution_id]
        got = [m["seq"] for m in mine if "seq" in m]
        # The snapshot first (as of its seq), then every later event once, across the resume.
        assert got[1:] == [s for s in stored if s > got[0]], execution_id
    seqs, _, cursor = last_id(rest).partition(";")
    assert [int(s) for s in seqs.split(",")] == [
        stored_events(server, i)[-1]["seq"] for i in ids
    ] and cursor  # each execution's last seq and the feed's cursor
    completed = {m["execution"]["id"] for m in everything if m["type"] == "execution"}
    assert set(ids) <= completed  # the feed showed each as completed, across the resume


async def test_too_many_executions_on_one_stream_is_a_400(server):
    ids = ",".join(f"00000000-0000-0000-0000-{i:012d}" for i in range(21))
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        status, _, body = await read_stream(
            client, f"/api/v1/stream?executions={ids}", headers=headers(server)
        )
        nothing, _, why = await read_stream(client, "/api/v1/stream", headers=headers(server))
    assert (status, body["code"]) == (400, 4400) and "at most 20" in body["detail"]
    assert nothing == 400 and "?executions=" in why["detail"]


async def test_long_poll_answers_as_soon_as_an_event_is_recorded_and_follows_the_run(server):
    [execution_id] = start(server, steps(6, seconds=0.2))
    polled: list[dict] = []
    waits: list[float] = []
    after = 0
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        while not (polled and polled[-1].get("status") == "completed"):
            began = time.monotonic()
            response = await client.get(
                f"/api/v1/executions/{execution_id}/events",
                params={"after": after, "wait": 10},
                headers=headers(server),
            )
            waits.append(time.monotonic() - began)
            assert response.status_code == 200, response.text
            page = response.json()["results"]
            assert page, "a long-poll on a running execution answered with nothing"
            polled.extend(page)
            after = page[-1]["seq"]
        finished = await client.get(
            f"/api/v1/executions/{execution_id}/events",
            params={"after": after, "wait": 10},
            headers=headers(server),
        )

    socket_messages, _ = await collect(server, execution_id, "?last_seq=0")
    assert polled == socket_messages  # the same messages as on the socket, seq by seq
    assert max(waits) < 5  # each answered when its event came, far before the wait's end
    assert finished.json() == {"next": None, "results": []}  # ended: at once, nothing after


async def test_long_poll_answers_empty_when_the_wait_runs_out(server):
    [execution_id] = start(server, chain(node("wait", "delay", seconds=5)))
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        began = time.monotonic()
        response = await client.get(
            f"/api/v1/executions/{execution_id}/events",
            params={"after": 1000, "wait": 1},  # far past the run's events
            headers=headers(server),
        )
        took = time.monotonic() - began
        too_long = await client.get(
            f"/api/v1/executions/{execution_id}/events",
            params={"wait": 31},
            headers=headers(server),
        )

    assert response.status_code == 200 and response.json() == {"next": None, "results": []}
    assert 0.9 < took < 3
    assert too_long.status_code == 400 and "wait" in too_long.json()


@pytest.mark.usefixtures("compiled_messages")
async def test_a_reader_that_stops_is_cut_off_without_slowing_another(server):
    definition = steps(30)
    [stalled_id, read_id] = start(server, definition, {"pad": "x" * OUTPUT_SIZE}, count=2)
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    port = int(server.url.rsplit(":", 1)[1])
    raw.connect(("127.0.0.1", port))
    raw.sendall(
        f"GET /api/v1/executions/{stalled_id}/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {server.token}\r\nAccept-Language: zh-CN\r\n\r\n".encode()
    )
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        began = time.monotonic()
        _, _, reader = await read_stream(
            client, f"/api/v1/executions/{read_id}/stream", headers=headers(server)
        )
        took = time.monotonic() - began
    assert messages_of(reader)[-1]["status"] == "completed"
    assert took < 10  # 30 steps of 0.05 s and the start's wait: not held back

    raw.settimeout(15)
    received = b""
    while chunk := raw.recv(65536):
        received += chunk
    raw.close()
    text = received.decode(errors="replace")
    error = json.loads(re.search(r"event: error\ndata: (.+)\n", text)[1])
    assert "REALTIME_SEND_BUFFER_BYTES" in error["message"]
    # In the request's language, which the server's hook reads from its headers.
    assert error["message"].startswith("你已停止读取：")
    assert "Last-Event-ID: <你收到的最后一个事件的 id>" in error["message"]
    assert text.count("event: node") < 2 * 31  # cut off before the run's end


async def test_a_long_poll_whose_client_went_away_gives_its_slot_back(tmp_path):
    with serve(tmp_path, {"REALTIME_MAX_SOCKETS_PER_USER": "1"}) as capped:
        [execution_id] = start(capped, chain(node("wait", "delay", seconds=60)))
        path = f"/api/v1/executions/{execution_id}/events?after=1000&wait=30"
        port = int(capped.url.rsplit(":", 1)[1])
        waiting = socket.create_connection(("127.0.0.1", port))
        waiting.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {capped.token}\r\n\r\n".encode()
        )
        async with httpx.AsyncClient(base_url=capped.url, timeout=30) as client:
            deadline = time.monotonic() + 10
            while (await client.get(path, headers=headers(capped))).status_code != 429:
                assert time.monotonic() < deadline, "the first long-poll never took its slot"
                await asyncio.sleep(0.1)
            waiting.close()  # long before its 30 s are over
            deadline = time.monotonic() + 5
            short = path.replace("wait=30", "wait=1")
            while (answer := await client.get(short, headers=headers(capped))).status_code == 429:
                assert time.monotonic() < deadline, "the slot was not given back"
                await asyncio.sleep(0.1)
        assert answer.status_code == 200 and answer.json()["results"] == []
