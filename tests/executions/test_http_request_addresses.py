"""Which addresses the http_request node connects to, whatever the host is called."""

import ipaddress
import socket

import pytest

from executions.engine.graph import InvalidDefinition, parse_definition
from tests.executions.engine_helpers import run
from tests.executions.http_servers import FakeDns, make_certificates, serving
from tests.factories import chain, node

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_dispatch")]


@pytest.fixture
def any_host(settings):
    """Every host name allowed, no non-public network: only the address check stands."""
    settings.EXECUTIONS_HTTP_ALLOWED_HOSTS = ["*"]
    settings.EXECUTIONS_HTTP_ALLOWED_NETWORKS = []


@pytest.fixture
def loopback_server():
    with serving() as server:
        yield server


@pytest.fixture
def fake_dns(monkeypatch) -> FakeDns:
    """``socket.getaddrinfo`` answers ``fake_dns.answers`` for those names, as usual for others."""
    dns = FakeDns()
    real = socket.getaddrinfo

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        name = host.decode() if isinstance(host, bytes) else host
        if name in dns.answers and not flags & socket.AI_NUMERICHOST:
            return dns.resolve(name, port)
        return real(host, port, family, type, proto, flags)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return dns


def request_node(url, **params):
    return chain(node("call", "http_request", url=url, **params))


# Ways of writing 127.0.0.1 (or a name for it) that all reach a loopback server.
LOOPBACK_FORMS = ["127.0.0.1", "0", "2130706433", "0x7f.1", "127.1", "[::ffff:127.0.0.1]"]


@pytest.mark.usefixtures("any_host")
@pytest.mark.parametrize("host", [*LOOPBACK_FORMS, "localhost"])
async def test_loopback_is_refused_however_it_is_written(loopback_server, host):
    execution, _ = await run(request_node(f"http://{host}:{loopback_server.port}/json"))
    assert execution.status == "failed"
    assert "the node calls public addresses only" in execution.error
    assert "EXECUTIONS_HTTP_ALLOWED_NETWORKS" in execution.error
    assert loopback_server.hits == []


@pytest.mark.usefixtures("any_host")
@pytest.mark.parametrize("host", [*LOOPBACK_FORMS, "localhost"])
async def test_allowed_networks_let_the_node_reach_them(loopback_server, settings, host):
    # "0" is 0.0.0.0, which Linux connects to the local host.
    settings.EXECUTIONS_HTTP_ALLOWED_NETWORKS = ["127.0.0.1/32", "0.0.0.0/32"]
    execution, _ = await run(request_node(f"http://{host}:{loopback_server.port}/json"))
    assert execution.status == "completed"
    assert execution.result["json"] == {"hello": "world"}


@pytest.mark.usefixtures("any_host")
@pytest.mark.parametrize(
    ("host", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("0", "unspecified"),
        ("0.0.0.0", "unspecified"),
        ("2130706433", "loopback"),
        ("0x7f.1", "loopback"),
        ("127.1", "loopback"),
        ("[::1]", "loopback"),
        ("[::]", "unspecified"),
        ("169.254.169.254", "link-local"),
        ("[fe80::1]", "link-local"),
        ("10.0.0.1", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("[fd00::1]", "private"),
        ("100.64.0.1", "non-public"),
        ("224.0.0.1", "multicast"),
        ("[ff02::1]", "multicast"),
        ("255.255.255.255", "reserved"),
        ("240.0.0.1", "reserved"),
        ("[::ffff:127.0.0.1]", "loopback"),
        ("[::ffff:169.254.169.254]", "link-local"),
        ("[::127.0.0.1]", "loopback"),
        ("[64:ff9b::a9fe:a9fe]", "link-local"),
        ("[2002:7f00:1::1]", "loopback"),
        ("[2002:a9fe:a9fe::1]", "link-local"),
        ("[2001:0:4136:e378:8000:63bf:80ff:fffe]", "loopback"),
    ],
)
def test_numeric_non_public_hosts_are_refused_at_validation(host, kind):
    with pytest.raises(InvalidDefinition) as refused:
        parse_definition(request_node(f"http://{host}/latest/meta-data/"))
    assert f"is a {kind} address; the node calls public addresses only" in str(refused.value)
    assert "EXECUTIONS_HTTP_ALLOWED_NETWORKS" in str(refused.value)


@pytest.mark.usefixtures("any_host")
@pytest.mark.parametrize("host", ["8.8.8.8", "[2606:4700::1111]", "[::ffff:8.8.8.8]", "a.example"])
def test_public_and_named_hosts_pass_validation(host):
    parse_definition(request_node(f"https://{host}/v1"))


@pytest.mark.usefixtures("any_host")
@pytest.mark.parametrize(
    ("answers", "kind"),
    [
        (["169.254.169.254"], "link-local"),
        (["10.1.2.3"], "private"),
        (["93.184.216.34", "127.0.0.1"], "loopback"),
        (["::ffff:127.0.0.1"], "loopback"),
    ],
)
async def test_a_name_is_refused_when_any_address_it_resolves_to_is_not_public(
    fake_dns, answers, kind
):
    fake_dns.answers["internal.test"] = [answers]
    definition = request_node("http://internal.test/latest/", timeout_seconds=2)
    execution, _ = await run(definition)
    assert execution.status == "failed"
    refused = ipaddress.ip_address(answers[-1])
    assert f"'internal.test' ({refused}) is a {kind} address" in execution.error
    assert fake_dns.lookups == ["internal.test"]


async def test_the_node_connects_to_the_address_it_checked(fake_dns, settings):
    """DNS rebinding: a later lookup of the name would give 127.0.0.1, never consulted."""
    settings.EXECUTIONS_HTTP_ALLOWED_HOSTS = ["rebind.test"]
    settings.EXECUTIONS_HTTP_ALLOWED_NETWORKS = ["127.0.0.2/32"]
    fake_dns.answers["rebind.test"] = [["127.0.0.2"], ["127.0.0.1"]]
    with serving("127.0.0.1") as internal, serving("127.0.0.2", internal.port) as checked:
        execution, _ = await run(request_node(f"http://rebind.test:{checked.port}/echo"))
    assert execution.status == "completed"
    assert execution.result["json"]["address"] == "127.0.0.2"
    assert execution.result["json"]["headers"]["host"] == f"rebind.test:{checked.port}"
    assert (checked.hits, internal.hits) == (["/echo"], [])
    assert fake_dns.lookups == ["rebind.test"]


async def test_a_name_that_first_resolves_to_loopback_is_refused(fake_dns, settings):
    """DNS rebinding the other way round: the answer checked is the one that counts."""
    settings.EXECUTIONS_HTTP_ALLOWED_HOSTS = ["rebind.test"]
    settings.EXECUTIONS_HTTP_ALLOWED_NETWORKS = ["127.0.0.2/32"]
    fake_dns.answers["rebind.test"] = [["127.0.0.1"], ["127.0.0.2"]]
    with serving("127.0.0.1") as internal, serving("127.0.0.2", internal.port) as checked:
        execution, _ = await run(request_node(f"http://rebind.test:{checked.port}/echo"))
    assert execution.status == "failed"
    assert "'rebind.test' (127.0.0.1) is a loopback address" in execution.error
    assert (checked.hits, internal.hits) == ([], [])


async def test_the_next_checked_address_is_tried_when_one_refuses_connections(fake_dns, settings):
    settings.EXECUTIONS_HTTP_ALLOWED_HOSTS = ["multi.test"]
    settings.EXECUTIONS_HTTP_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    with serving("127.0.0.1") as server:
        fake_dns.answers["multi.test"] = [["127.0.0.3", "127.0.0.1"]]
        execution, _ = await run(request_node(f"http://multi.test:{server.port}/json"))
    assert execution.status == "completed"
    assert server.hits == ["/json"]


async def test_https_checks_the_certificate_against_the_host_name(
    fake_dns, settings, monkeypatch, tmp_path
):
    certificates = make_certificates(tmp_path, "good.test")
    monkeypatch.setattr(
        "executions.engine.nodes.http_request.tls_context", certificates.client_context
    )
    settings.EXECUTIONS_HTTP_ALLOWED_HOSTS = ["*"]
    settings.EXECUTIONS_HTTP_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    fake_dns.answers.update({"good.test": [["127.0.0.1"]], "other.test": [["127.0.0.1"]]})
    with serving(tls=certificates.server_context()) as server:
        good, _ = await run(request_node(f"{server.url('good.test', 'https')}/json"))
        other, _ = await run(request_node(f"{server.url('other.test', 'https')}/json"))
    assert good.status == "completed"
    assert good.result["json"] == {"hello": "world"}
    assert other.status == "failed"
    assert "Hostname mismatch, certificate is not valid for 'other.test'" in other.error
    assert server.sni_names == ["good.test", "other.test"]
    assert server.hits == ["/json"]


async def test_a_bad_allowed_network_fails_the_node_naming_the_setting(settings, fake_dns):
    settings.EXECUTIONS_HTTP_ALLOWED_HOSTS = ["*"]
    fake_dns.answers["api.test"] = [["10.0.0.5"]]
    definition = request_node("http://api.test/")
    parse_definition(definition)
    settings.EXECUTIONS_HTTP_ALLOWED_NETWORKS = ["10.0.0.0/8", "intranet"]
    execution, _ = await run(definition)
    assert execution.status == "failed"
    assert "EXECUTIONS_HTTP_ALLOWED_NETWORKS has 'intranet', which is not a network" in (
        execution.error
    )
    with pytest.raises(InvalidDefinition) as refused:
        parse_definition(request_node("http://10.0.0.5/"))
    assert "EXECUTIONS_HTTP_ALLOWED_NETWORKS has 'intranet'" in str(refused.value)
