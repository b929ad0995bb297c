"""The http_request node against real HTTP servers on loopback."""

import time
import tracemalloc

import pytest

from executions.engine.graph import InvalidDefinition, parse_definition
from executions.engine.registry import get_node_type
from executions.models import Workflow
from tests.executions.engine_helpers import run
from tests.executions.http_servers import (
    BOMB_EXPANDED_BYTES,
    DRIP_BYTES,
    DRIP_INTERVAL,
    gzip_bomb,
    serving,
)
from tests.factories import chain, make_workflow, node

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_dispatch")]


@pytest.fixture
def http_server(settings):
    """A server on 127.0.0.1 that the node is allowed to call."""
    settings.EXECUTIONS_HTTP_ALLOWED_HOSTS = ["127.0.0.1"]
    settings.EXECUTIONS_HTTP_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    with serving() as server:
        yield server


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
    execution, _ = await run(request_node(f"{http_server.url()}/json"))
    assert execution.status == "completed"
    assert execution.result["status"] == 200
    assert execution.result["json"] == {"hello": "world"}
    assert execution.result["headers"]["content-type"] == "application/json"


async def test_post_json_body_and_headers(http_server):
    definition = request_node(
        f"{http_server.url()}/echo", method="POST", json={"n": [1, 2]}, headers={"X-Token": "t"}
    )
    execution, _ = await run(definition)
    assert execution.result["status"] == 201
    assert execution.result["json"] == {"got": {"n": [1, 2]}, "header": "t"}


async def test_text_response_and_error_statuses_are_output_not_failures(http_server):
    execution, _ = await run(request_node(f"{http_server.url()}/text"))
    assert execution.status == "completed"
    assert (execution.result["status"], execution.result["text"]) == (404, "nothing here")


async def test_host_refused_at_run_time_fails_the_node(http_server, settings):
    definition = request_node(f"{http_server.url()}/json")
    parse_definition(definition)
    settings.EXECUTIONS_HTTP_ALLOWED_HOSTS = []
    execution, _ = await run(definition)
    assert execution.status == "failed"
    assert "host '127.0.0.1' is not allowed" in execution.error
    assert http_server.hits == []


async def test_redirects_are_output_not_followed(http_server):
    execution, _ = await run(request_node(f"{http_server.url()}/redirect"))
    assert execution.status == "completed"
    assert execution.result["status"] == 302
    assert execution.result["headers"]["location"] == "http://169.254.169.254/latest/"
    assert http_server.hits == ["/redirect"]


# --- headers ----------------------------------------------------------------

CLIENT_HEADERS = [
    "Host",
    "host",
    "Connection",
    "Keep-Alive",
    "Proxy-Authorization",
    "Proxy-Connection",
    "TE",
    "Trailer",
    "Transfer-Encoding",
    "Upgrade",
    "Content-Length",
]


@pytest.mark.parametrize("name", CLIENT_HEADERS)
def test_headers_the_client_sets_are_refused_at_validation(settings, name):
    settings.EXECUTIONS_HTTP_ALLOWED_HOSTS = ["api.example.com"]
    definition = request_node("https://api.example.com/v1", headers={name: "x", "X-Ok": "1"})
    with pytest.raises(InvalidDefinition) as refused:
        parse_definition(definition)
    assert f"header {name!r} is not allowed" in str(refused.value)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"X Bad": "1"}, "header name 'X Bad' is not a valid HTTP header name"),
        ({"X-Split": "a\r\nX-Injected: 1"}, "header 'X-Split' may hold printable ASCII only"),
        ({"X-Word": "caf\u00e9"}, "header 'X-Word' may hold printable ASCII only"),
    ],
)
def test_malformed_headers_are_refused_at_validation(settings, headers, expected):
    settings.EXECUTIONS_HTTP_ALLOWED_HOSTS = ["api.example.com"]
    with pytest.raises(InvalidDefinition) as refused:
        parse_definition(request_node("https://api.example.com/v1", headers=headers))
    assert expected in str(refused.value)


async def test_run_time_sends_its_own_host_whatever_the_params_hold(http_server):
    params = {
        "method": "GET",
        "url": f"{http_server.url()}/echo",
        "headers": {"Host": "evil.example", "Transfer-Encoding": "chunked", "X-Token": "t"},
        "timeout_seconds": 5,
    }
    output = await get_node_type("http_request").run(None, params, {})
    seen = output["json"]["headers"]
    assert seen["host"] == f"127.0.0.1:{http_server.port}"
    assert "transfer-encoding" not in seen
    assert seen["x-token"] == "t"


async def test_a_caller_may_choose_the_accepted_encoding(http_server):
    definition = request_node(f"{http_server.url()}/echo", headers={"accept-encoding": "identity"})
    execution, _ = await run(definition)
    assert execution.result["json"]["accept_encoding"] == ["identity"]
    default, _ = await run(request_node(f"{http_server.url()}/echo"))
    assert default.result["json"]["accept_encoding"] == ["gzip, deflate"]


# --- response size ----------------------------------------------------------


async def test_response_size_is_limited(http_server, settings):
    settings.EXECUTIONS_HTTP_MAX_RESPONSE_BYTES = 1000
    execution, _ = await run(request_node(f"{http_server.url()}/big"))
    assert execution.status == "failed"
    assert execution.error == (
        "Node 'call' failed: response is larger than 1000 bytes "
        "(EXECUTIONS_HTTP_MAX_RESPONSE_BYTES); ask for less, or an operator can raise the limit."
    )


@pytest.mark.parametrize(
    ("path", "key", "expected"),
    [
        ("/gzip", "json", {"hello": "gzip"}),
        ("/deflate", "text", "deflated text"),
    ],
)
async def test_compressed_responses_are_decoded(http_server, path, key, expected):
    execution, _ = await run(request_node(f"{http_server.url()}{path}"))
    assert execution.status == "completed"
    assert execution.result[key] == expected


async def test_gzip_bomb_stops_at_the_limit_without_expanding(http_server, settings):
    limit = settings.EXECUTIONS_HTTP_MAX_RESPONSE_BYTES = 1024 * 1024
    assert len(gzip_bomb()) < limit  # the compressed body itself is within the limit
    await run(request_node(f"{http_server.url()}/gzip"))  # first-call imports and caches
    baseline, _ = await traced_peak(run(request_node(f"{http_server.url()}/gzip")))
    peak, (execution, _) = await traced_peak(run(request_node(f"{http_server.url()}/gzip-bomb")))
    assert execution.status == "failed"
    # Beyond a small call: the body held and one decoded piece, each at most the limit.
    assert peak - baseline < 3 * limit < BOMB_EXPANDED_BYTES
    assert f"larger than {limit} bytes (EXECUTIONS_HTTP_MAX_RESPONSE_BYTES)" in execution.error


async def traced_peak(work):
    """The most memory Python held while ``work`` ran, and what it returned."""
    tracemalloc.start()
    try:
        result = await work
        return tracemalloc.get_traced_memory()[1], result
    finally:
        tracemalloc.stop()


async def test_encodings_the_node_cannot_bound_fail_the_node(http_server):
    execution, _ = await run(request_node(f"{http_server.url()}/brotli"))
    assert execution.status == "failed"
    assert "Content-Encoding 'br'; the node decodes only gzip and deflate" in execution.error


# --- deadline ---------------------------------------------------------------


async def test_request_timeout_fails_the_node(http_server):
    execution, _ = await run(request_node(f"{http_server.url()}/slow", timeout_seconds=0.2))
    assert execution.status == "failed"
    assert "did not finish within 0.2 s" in execution.error


async def test_a_dripping_body_fails_at_the_node_timeout(http_server):
    started = time.monotonic()
    execution, _ = await run(request_node(f"{http_server.url()}/drip", timeout_seconds=1))
    elapsed = time.monotonic() - started
    assert execution.status == "failed"
    assert "did not finish within 1 s" in execution.error
    # Each byte came within any per-read timeout; the whole body would take this long.
    assert elapsed < DRIP_BYTES * DRIP_INTERVAL / 2


async def test_the_node_timeout_is_capped_by_the_setting(http_server, settings):
    settings.EXECUTIONS_HTTP_MAX_SECONDS = 0.5
    execution, _ = await run(request_node(f"{http_server.url()}/drip", timeout_seconds=30))
    assert execution.status == "failed"
    assert execution.error.endswith(
        "did not finish within 0.5 s (the node's timeout_seconds, at most "
        "EXECUTIONS_HTTP_MAX_SECONDS)."
    )


# --- URLs -------------------------------------------------------------------

MALFORMED_URLS = {
    "letters for a port": ("http://host:abc/x", "url: is not a valid URL: Invalid port: 'abc'."),
    "unclosed bracket": ("http://[::1", "url: has a '[' without its ']'"),
    "unclosed bracket, path": ("http://[::1/x", "url: has a '[' without its ']'"),
    "port too large": ("http://host:99999/", "url: has port 99999; a port is a number from 1"),
    "port zero": ("http://host:0/", "url: has port 0; a port is a number from 1 to 65535."),
    "space in host": ("http://a b/", "url: has host 'a%20b', which is neither a host name"),
    "no host": ("http:///x", "url: must be an absolute http:// or https:// URL."),
    "no scheme": ("//host/x", "url: must be an absolute http:// or https:// URL."),
    "control character": ("http://h\x01/", "url: is not a valid URL: Invalid non-printable"),
}


@pytest.mark.parametrize(
    ("url", "expected"), list(MALFORMED_URLS.values()), ids=list(MALFORMED_URLS)
)
@pytest.mark.parametrize("write", ["post", "put", "patch"])
def test_malformed_urls_are_400_on_workflow_writes(api, user, settings, write, url, expected):
    settings.EXECUTIONS_HTTP_ALLOWED_HOSTS = ["*"]
    body = {"name": "new", "definition": request_node(url)}
    if write == "post":
        response = api.post("/api/v1/workflows", body, format="json")
    else:
        workflow = make_workflow(user, name="old")
        response = getattr(api, write)(f"/api/v1/workflows/{workflow.id}", body, format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"definition"}
    [message] = response.json()["definition"]
    assert message.startswith("node 'call' (http_request): ")
    assert expected in message
    assert not Workflow.objects.filter(name="new").exists()


def test_a_refused_header_is_400_on_workflow_create(api, settings):
    settings.EXECUTIONS_HTTP_ALLOWED_HOSTS = ["api.example.com"]
    definition = request_node("https://api.example.com/", headers={"Host": "internal"})
    response = api.post("/api/v1/workflows", {"name": "n", "definition": definition}, format="json")
    assert response.status_code == 400
    assert "header 'Host' is not allowed" in response.json()["definition"][0]
