"""The http_request node with ``stream: true``, against real streaming servers on loopback.

The servers write each piece as one chunk; where a script says ``WAIT`` the
server holds its next write until the node has streamed one more piece, so
the node reads those writes separately and the calls it makes are exact.
"""

import json
import time
import zlib

import pytest

from executions.engine.graph import InvalidDefinition, parse_definition
from executions.engine.registry import get_node_type
from executions.exceptions import NodeFailed
from tests.executions.http_servers import DRIP_INTERVAL, WAIT, Script, serving
from tests.factories import chain, node

SSE = "text/event-stream"
BROKE = "peer closed connection without sending complete message body (incomplete chunked read)"


class RecordingContext:
    """A node context that records what the node streams, and lets the server write on."""

    def __init__(self, server):
        self.server = server
        self.calls: list[tuple[str, object]] = []
        self.names: set[str] = set()

    async def stream(self, text: str, name: str = "output") -> None:
        self.record("stream", text, name)

    async def stream_json(self, obj: object, name: str = "output") -> None:
        self.record("stream_json", obj, name)

    async def log(self, message: str, level: str = "info") -> None:
        pass

    def progress(self, fraction: float) -> None:
        pass

    def record(self, method: str, value: object, name: str) -> None:
        self.calls.append((method, value))
        self.names.add(name)
        self.server.client_streamed.release()

    def texts(self) -> list[str]:
        assert {method for method, _ in self.calls} <= {"stream"}
        return [text for _, text in self.calls]


@pytest.fixture
def http_server(settings):
    """A server on 127.0.0.1 that the node is allowed to call."""
    settings.EXECUTIONS_HTTP_ALLOWED_HOSTS = ["127.0.0.1"]
    settings.EXECUTIONS_HTTP_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    with serving() as server:
        yield server


@pytest.fixture
def ctx(http_server) -> RecordingContext:
    return RecordingContext(http_server)


async def call(server, ctx, script: Script, **params) -> dict:
    """Run the node on ``script``, served at ``/stream``, with ``stream: true``."""
    server.scripts["/stream"] = script
    node_type = get_node_type("http_request")
    cleaned = node_type.validate_params(
        {"url": f"{server.url()}/stream", "stream": True, "timeout_seconds": 5, **params}
    )
    return await node_type.run(ctx, cleaned, {})


def openai_event(delta: dict) -> bytes:
    return b"data: " + json.dumps({"choices": [{"index": 0, "delta": delta}]}).encode() + b"\n\n"


# --- server-sent events -----------------------------------------------------


async def test_each_event_is_streamed_as_it_arrives(http_server, ctx):
    writes = [b"data: Hello\n\n", WAIT, b"data: , \n\ndata: world\n\n"]
    output = await call(http_server, ctx, Script(SSE, writes))
    assert ctx.calls == [("stream", "Hello"), ("stream", ", "), ("stream", "world")]
    assert ctx.names == {"output"}
    assert set(output) == {"status", "headers", "text"}
    assert (output["status"], output["text"]) == (200, "Hello, world")
    assert output["headers"]["content-type"] == SSE


async def test_events_with_many_data_lines_comments_and_any_line_end(http_server, ctx):
    writes = [
        b": a comment\ndata: zero\n\nevent: greeting\r\nid: 7\r\ndata: first line\r",
        WAIT,  # the CRLF above is split across two writes
        b"\ndata:second\r\n\r\nretry: 10\n: only a comment\n\ndata: a\rdata: b\r\r",
        b"data\n\ndata: last",  # an empty event, then one the body ends without ending
    ]
    output = await call(http_server, ctx, Script(SSE, writes))
    assert ctx.texts() == ["zero", "first line\nsecond", "a\nb", "last"]
    assert output["text"] == "zerofirst line\nseconda\nblast"


async def test_openai_events_stream_their_text_until_done(http_server, ctx):
    euro = "€".encode()
    writes = [
        openai_event({"role": "assistant", "content": ""}),
        openai_event({"content": "Hel"}) + b'data: {"choi',
        WAIT,
        b'ces": [{"delta": {"content": "lo, "}}]}\n\n: keep-alive\n\n',
        openai_event({"content": None}) + b'data: {"choices": [{"delta": {"content": "' + euro[:1],
        WAIT,
        euro[1:] + b'5"}}]}\r\n\r\n' + openai_event({}) + b"data: [DO",
        WAIT,
        b"NE]\n\n" + openai_event({"content": "after the end"}),
    ]
    # The server keeps the connection open after [DONE]: the node stops there by itself.
    output = await call(http_server, ctx, Script(SSE, writes, hold=True), format="openai")
    assert ctx.texts() == ["Hel", "lo, ", "€5"]
    assert output["text"] == "Hello, €5"


async def test_an_openai_stream_that_ends_before_done_fails(http_server, ctx):
    body = openai_event({"content": "Hi"})
    with pytest.raises(NodeFailed) as failed:
        await call(http_server, ctx, Script(SSE, [body]), format="openai")
    assert str(failed.value) == (
        f"the response stream broke after {len(body)} bytes: the stream ended before "
        "data: [DONE]; the text streamed so far is kept in the node's streams."
    )
    assert ctx.texts() == ["Hi"]


async def test_openai_data_that_is_not_json_fails_naming_it(http_server, ctx):
    writes = [openai_event({"content": "ok"}), b"data: {oops " + b"x" * 500 + b"\n\n"]
    with pytest.raises(NodeFailed) as failed:
        await call(http_server, ctx, Script(SSE, writes), format="openai")
    message = str(failed.value)
    assert message.startswith("the data of event 2 of the response stream is not JSON (")
    assert "'{oops " + "x" * 194 + "...'" in message
    assert len(message) < 400
    assert ctx.texts() == ["ok"]


async def test_a_compressed_event_stream_is_decoded_as_it_arrives(http_server, ctx):
    gzip = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    first = gzip.compress(b"data: one\n\n") + gzip.flush(zlib.Z_SYNC_FLUSH)
    writes = [first, WAIT, gzip.compress(b"data: two\n\n") + gzip.flush()]
    script = Script(SSE, writes, headers={"Content-Encoding": "gzip"})
    output = await call(http_server, ctx, script)
    assert ctx.texts() == ["one", "two"]
    assert output["text"] == "onetwo"


# --- NDJSON -----------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["application/x-ndjson", "application/jsonl"])
async def test_each_json_line_is_streamed_as_a_value(http_server, ctx, content_type):
    writes = [b'{"n": 1}\n{"n": 2}\n', WAIT, WAIT, b'\n[3, "thr', b'ee"]\r\n"tail"']
    output = await call(http_server, ctx, Script(f"{content_type}; charset=utf-8", writes))
    values = [{"n": 1}, {"n": 2}, [3, "three"], "tail"]
    assert ctx.calls == [("stream_json", value) for value in values]
    assert set(output) == {"status", "headers", "json"}
    assert output["json"] == values


async def test_openai_json_lines_stream_their_text(http_server, ctx):
    lines = [openai_event({"content": text})[6:-1] for text in ["a", "", "b"]]
    output = await call(http_server, ctx, Script("application/jsonl", lines), format="openai")
    assert ctx.texts() == ["a", "b"]
    assert set(output) == {"status", "headers", "text"}
    assert output["text"] == "ab"


async def test_a_line_that_is_not_json_fails_naming_it(http_server, ctx):
    writes = [b'{"n": 1}\n', b"not json " + b"x" * 500 + b"\n", b'{"n": 3}\n']
    with pytest.raises(NodeFailed) as failed:
        await call(http_server, ctx, Script("application/x-ndjson", writes))
    message = str(failed.value)
    assert message.startswith("line 2 of the response stream is not JSON (Expecting value")
    assert "'not json " + "x" * 191 + "...'" in message
    assert ctx.calls == [("stream_json", {"n": 1})]


# --- text -------------------------------------------------------------------


async def test_text_is_streamed_piece_by_piece_with_characters_split_across_writes(
    http_server, ctx
):
    writes = [b"caf\xc3", WAIT, b"\xa9 \xe2\x82", WAIT, b"\xac5 \xf0\x9f", WAIT, b"\x8d\xb5"]
    output = await call(http_server, ctx, Script("text/plain; charset=utf-8", writes))
    assert ctx.texts() == ["caf", "é ", "€5 ", "🍵"]
    assert output["text"] == "café €5 🍵"


# --- a stream that breaks ---------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "writes", "streamed"),
    [
        (SSE, [b"data: one\n\n", WAIT, b"data: two\n\ndata: thr"], ["one", "two", "thr"]),
        ("text/plain", [b"one ", WAIT, b"two "], ["one ", "two "]),
    ],
)
async def test_a_stream_that_breaks_fails_and_keeps_what_arrived(
    http_server, ctx, content_type, writes, streamed
):
    arrived = sum(len(write) for write in writes if write is not WAIT)
    with pytest.raises(NodeFailed) as failed:
        await call(http_server, ctx, Script(content_type, writes, complete=False))
    assert str(failed.value) == (
        f"the response stream broke after {arrived} bytes: {BROKE}; "
        "the text streamed so far is kept in the node's streams."
    )
    assert ctx.texts() == streamed


async def test_json_lines_that_break_keep_the_whole_lines(http_server, ctx):
    writes = [b'{"n": 1}\n{"n": ', WAIT]
    with pytest.raises(NodeFailed) as failed:
        await call(http_server, ctx, Script("application/x-ndjson", writes, complete=False))
    assert str(failed.value).endswith(
        f"{BROKE}; the values streamed so far are kept in the node's streams."
    )
    assert ctx.calls == [("stream_json", {"n": 1})]


# --- limits -----------------------------------------------------------------

TOO_LARGE = (
    "response is larger than 1000 bytes (EXECUTIONS_HTTP_MAX_RESPONSE_BYTES); "
    "ask for less, or an operator can raise the limit."
)


@pytest.mark.parametrize("compressed", [False, True], ids=["identity", "gzip"])
async def test_the_size_limit_stops_a_stream_as_it_passes(http_server, ctx, settings, compressed):
    settings.EXECUTIONS_HTTP_MAX_RESPONSE_BYTES = 1000
    event = b"data: " + b"y" * 92 + b"\n\n"
    assert len(event) == 100
    writes, headers = [event] * 20, {}
    if compressed:
        gzip = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        writes = [gzip.compress(event) + gzip.flush(zlib.Z_SYNC_FLUSH) for event in writes]
        headers = {"Content-Encoding": "gzip"}
        # Counted as decoded: the bytes sent are well within the limit.
        assert sum(map(len, writes)) < 1000
    script = Script(SSE, [part for write in writes for part in (write, WAIT)], headers=headers)
    with pytest.raises(NodeFailed) as failed:
        await call(http_server, ctx, script)
    assert str(failed.value) == TOO_LARGE
    assert ctx.texts() == ["y" * 92] * 10


@pytest.mark.parametrize("content_type", [SSE, "application/x-ndjson"])
async def test_one_event_or_line_past_the_limit_fails_as_the_limit(
    http_server, ctx, settings, content_type
):
    settings.EXECUTIONS_HTTP_MAX_RESPONSE_BYTES = 1000
    writes = [b'data: "' + b"z" * 400, *[b"z" * 400] * 3]
    with pytest.raises(NodeFailed) as failed:
        await call(http_server, ctx, Script(content_type, writes))
    assert str(failed.value) == TOO_LARGE
    assert ctx.calls == []


async def test_a_dripping_stream_fails_at_the_node_timeout(http_server, ctx):
    http_server.write_interval = DRIP_INTERVAL
    started = time.monotonic()
    with pytest.raises(NodeFailed) as failed:
        await call(http_server, ctx, Script(SSE, [b"data: tick\n\n"] * 40), timeout_seconds=1)
    elapsed = time.monotonic() - started
    assert str(failed.value).endswith(
        "/stream did not finish within 1 s (the node's timeout_seconds, at most "
        "EXECUTIONS_HTTP_MAX_SECONDS)."
    )
    # Each event came in time; the whole stream would take ten seconds.
    assert elapsed < 40 * DRIP_INTERVAL / 2
    assert 1 <= len(ctx.calls) <= 1 / DRIP_INTERVAL + 1
    assert set(ctx.texts()) == {"tick"}


async def test_an_address_refused_at_run_time_is_refused_when_streaming(http_server, ctx, settings):
    http_server.scripts["/stream"] = Script(SSE, [b"data: secret\n\n"])
    node_type = get_node_type("http_request")
    params = node_type.validate_params({"url": f"{http_server.url()}/stream", "stream": True})
    settings.EXECUTIONS_HTTP_ALLOWED_NETWORKS = []
    with pytest.raises(NodeFailed) as failed:
        await node_type.run(ctx, params, {})
    assert "is a loopback address; the node calls public addresses only" in str(failed.value)
    assert (http_server.hits, ctx.calls) == ([], [])


# --- what is not streamed ---------------------------------------------------


async def test_an_error_status_is_read_as_without_streaming(http_server, ctx):
    script = Script(SSE, [b"data: busy\n\n"], status=503)
    output = await call(http_server, ctx, script)
    assert (output["status"], output["text"]) == (503, "data: busy\n\n")
    assert ctx.calls == []


async def test_without_stream_the_body_is_read_whole(http_server, ctx):
    output = await call(
        http_server, ctx, Script(SSE, [b"data: a\n\n", b"data: b\n\n"]), stream=False
    )
    assert set(output) == {"status", "headers", "text"}
    assert output["text"] == "data: a\n\ndata: b\n\n"
    assert ctx.calls == []


# --- params -----------------------------------------------------------------


def request_node(**params):
    return chain(node("call", "http_request", url="https://api.example.com/v1", **params))


def test_stream_and_format_default_to_off_and_text(settings):
    settings.EXECUTIONS_HTTP_ALLOWED_HOSTS = ["api.example.com"]
    params = get_node_type("http_request").validate_params({"url": "https://api.example.com/"})
    assert (params["stream"], params["format"]) == (False, "text")


def test_an_unknown_format_is_refused_listing_the_formats(settings):
    settings.EXECUTIONS_HTTP_ALLOWED_HOSTS = ["api.example.com"]
    with pytest.raises(InvalidDefinition) as refused:
        parse_definition(request_node(stream=True, format="xml"))
    assert "\"xml\" is not a format; use one of ['text', 'openai']." in str(refused.value)


@pytest.mark.parametrize("value", ["true", 1, 0, None])
def test_stream_must_be_a_boolean(settings, value):
    settings.EXECUTIONS_HTTP_ALLOWED_HOSTS = ["api.example.com"]
    with pytest.raises(InvalidDefinition) as refused:
        parse_definition(request_node(stream=value))
    assert "stream" in str(refused.value)
    assert "valid boolean" in str(refused.value) or "may not be null" in str(refused.value)
