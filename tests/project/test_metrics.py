"""``GET /metrics`` on a server: who may read it, and the HTTP requests it counts."""

import pytest
from channels.testing import HttpCommunicator
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from executions.metrics import loop_lag
from project.asgi import application

TOKEN = "scrape-token-of-some-length"


@pytest.fixture(autouse=True)
def no_lag_measures():
    """A scrape starts measuring its loop's lag; each test's loop is its own."""
    yield
    loop_lag.stop()


async def scrape(
    headers: list[tuple[bytes, bytes]] = (), client: str = "10.1.2.3", method: str = "GET"
) -> tuple[int, str]:
    communicator = HttpCommunicator(application, method, "/metrics", headers=list(headers))
    communicator.scope["client"] = [client, 50000]
    response = await communicator.get_response(timeout=5)
    return response["status"], response["body"].decode()


def families(page: str) -> dict:
    return {family.name: family for family in text_string_to_metric_families(page)}


async def test_closed_by_default_when_debug_is_off(settings):
    settings.DEBUG = False
    status, body = await scrape()
    assert status == 403
    assert "set METRICS_TOKEN" in body and "METRICS_ALLOWED_ADDRESSES" in body


async def test_open_to_anyone_in_debug_without_a_token_or_addresses(settings):
    settings.DEBUG = True
    status, body = await scrape()
    assert status == 200
    found = families(body)
    assert found["workflows_sockets_open"].type == "gauge"
    assert found["workflows_push_latency_seconds"].type == "histogram"
    assert found["workflows_executions_running"].type == "gauge"
    assert "process_resident_memory_bytes" in found


async def test_the_token_opens_them_and_nothing_else_does(settings):
    settings.DEBUG = True  # a token closes them even in debug
    settings.METRICS_TOKEN = TOKEN
    assert (await scrape())[0] == 403
    assert (await scrape([(b"authorization", b"Bearer not-the-token")]))[0] == 403
    assert (await scrape([(b"authorization", f"Bearer {TOKEN}".encode())]))[0] == 200


async def test_an_allowed_address_is_the_client_the_trusted_proxies_say(settings):
    settings.METRICS_ALLOWED_ADDRESSES = ["192.0.2.0/24", "2001:db8::1"]
    assert (await scrape(client="192.0.2.7"))[0] == 200
    assert (await scrape(client="2001:db8::1"))[0] == 200
    status, body = await scrape(client="10.1.2.3")
    assert status == 403 and "not 10.1.2.3" in body
    # Behind one proxy the client is the entry it added, not the proxy itself.
    settings.TRUSTED_PROXY_HOPS = 1
    forwarded = [(b"x-forwarded-for", b"192.0.2.7")]
    assert (await scrape(forwarded, client="10.0.0.2"))[0] == 200
    spoofed = [(b"x-forwarded-for", b"192.0.2.7, 10.9.9.9")]
    assert (await scrape(spoofed, client="10.0.0.2"))[0] == 403


async def test_off_they_are_not_served(settings):
    settings.DEBUG = True
    settings.METRICS_ENABLED = False
    status, body = await scrape()
    assert status == 404 and "METRICS_ENABLED" in body


async def test_they_are_read_with_get(settings):
    settings.DEBUG = True
    assert (await scrape(method="POST"))[0] == 405
    assert (await scrape(method="HEAD"))[0] == 200


def requests_counted(route: str, method: str, status: str) -> float:
    labels = {"route": route, "method": method, "status": status}
    return REGISTRY.get_sample_value("workflows_http_requests_total", labels) or 0.0


def requests_timed(route: str) -> float:
    labels = {"route": route}
    return REGISTRY.get_sample_value("workflows_http_request_duration_seconds_count", labels) or 0


@pytest.mark.django_db
def test_requests_are_counted_by_route_method_and_status(api):
    listed = requests_counted("execution-list", "GET", "200"), requests_timed("execution-list")
    missing = requests_counted("execution-detail", "GET", "404")
    unmatched = requests_counted("unmatched", "GET", "404")
    assert api.get("/api/v1/executions").status_code == 200
    assert api.get("/api/v1/executions/00000000-0000-0000-0000-000000000000").status_code == 404
    assert api.get("/no/such/page/12345").status_code == 404
    assert requests_counted("execution-list", "GET", "200") == listed[0] + 1
    assert requests_timed("execution-list") == listed[1] + 1
    assert requests_counted("execution-detail", "GET", "404") == missing + 1
    # Whatever the path held, the route is one of a fixed set.
    assert requests_counted("unmatched", "GET", "404") == unmatched + 1


@pytest.mark.django_db
def test_with_metrics_off_requests_are_not_counted(api, settings):
    settings.METRICS_ENABLED = False
    before = requests_counted("execution-list", "GET", "200")
    assert api.get("/api/v1/executions").status_code == 200
    assert requests_counted("execution-list", "GET", "200") == before
