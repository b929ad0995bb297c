"""The http_request node against a real HTTP server on loopback."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from executions.engine.graph import InvalidDefinition, parse_definition
from tests.executions.engine_helpers import no_dispatch, run  # noqa: F401
from tests.factories import chain, node

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_dispatch")]


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/json":
            self.reply(200, "application/json", json.dumps({"hello": "world"}).encode())
        elif self.path == "/text":
            self.reply(404, "text/plain; charset=utf-8", b"nothing here")
        elif self.path == "/big":
            self.reply(200, "text/plain", b"x" * 5000)
        elif self.path == "/slow":
            time.sleep(1)
            self.reply(200, "text/plain", b"late")

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        echo = {"got": json.loads(body), "header": self.headers.get("X-Token")}
        self.reply(201, "application/json", json.dumps(echo).encode())

    def reply(self, status, content_type, body):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server(settings):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.EXECUTIONS_HTTP_ALLOWED_HOSTS = ["127.0.0.1"]
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def request_node(url, **params):
    return chain(node("call", "http_request", url=url, **params))


def test_no_host_is_allowed_by_default(settings):
    settings.EXECUTIONS_HTTP_ALLOWED_HOSTS = []
    with pytest.raises(InvalidDefinition) as refused:
        parse_definition(request_node("http://127.0.0.1:9/x"))
    assert "host '127.0.0.1' is not allowed" in str(refused.value)
    assert "EXECUTIONS_HTTP_ALLOWED_HOSTS" in str(refused.value)


def test_allowed_hosts_match_host_or_host_and_port(settings):
    settings.EXECUTIONS_HTTP_ALLOWED_HOSTS = ["api.example.com:8443"]
    parse_definition(request_node("https://api.example.com:8443/v1"))
    with pytest.raises(InvalidDefinition):
        parse_definition(request_node("https://api.example.com/v1"))
    with pytest.raises(InvalidDefinition) as bad:
        parse_definition(request_node("ftp://api.example.com:8443/v1"))
    assert "absolute http:// or https:// URL" in str(bad.value)


async def test_get_json(http_server):
    execution, _ = await run(request_node(f"{http_server}/json"))
    assert execution.status == "completed"
    assert execution.result["status"] == 200
    assert execution.result["json"] == {"hello": "world"}
    assert execution.result["headers"]["content-type"] == "application/json"


async def test_post_json_body_and_headers(http_server):
    definition = request_node(
        f"{http_server}/echo", method="POST", json={"n": [1, 2]}, headers={"X-Token": "t"}
    )
    execution, _ = await run(definition)
    assert execution.result["status"] == 201
    assert execution.result["json"] == {"got": {"n": [1, 2]}, "header": "t"}


async def test_text_response_and_error_statuses_are_output_not_failures(http_server):
    execution, _ = await run(request_node(f"{http_server}/text"))
    assert execution.status == "completed"
    assert (execution.result["status"], execution.result["text"]) == (404, "nothing here")


async def test_host_refused_at_run_time_fails_the_node(http_server, settings):
    definition = request_node(f"{http_server}/json")
    parse_definition(definition)
    settings.EXECUTIONS_HTTP_ALLOWED_HOSTS = []
    execution, _ = await run(definition)
    assert execution.status == "failed"
    assert "host '127.0.0.1' is not allowed" in execution.error


async def test_response_size_is_limited(http_server, settings):
    settings.EXECUTIONS_HTTP_MAX_RESPONSE_BYTES = 1000
    execution, _ = await run(request_node(f"{http_server}/big"))
    assert execution.status == "failed"
    assert execution.error == "Node 'call' failed: response is larger than 1000 bytes."


async def test_request_timeout_fails_the_node(http_server):
    execution, _ = await run(request_node(f"{http_server}/slow", timeout_seconds=0.2))
    assert execution.status == "failed"
    assert "Timeout" in execution.error
