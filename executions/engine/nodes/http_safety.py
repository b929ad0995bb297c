"""Where the http_request node may connect: URL, header and address checks.

A host passes two gates: its name must be in ``EXECUTIONS_HTTP_ALLOWED_HOSTS``,
and every address it resolves to must be public (or inside
``EXECUTIONS_HTTP_ALLOWED_NETWORKS``). The node resolves the host once, checks
the answer, and connects to the address it checked.
"""

import asyncio
import ipaddress
import re
import socket

import httpx
from django.conf import settings
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from executions.exceptions import NodeFailed

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Headers the client sets itself: a caller's value would redirect the request
# (Host) or desynchronise the connection (the hop-by-hop ones, Content-Length).
FORBIDDEN_HEADERS = frozenset(
    {
        "host",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
)
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e]*")
_HOST_NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?")
_AUTHORITY = re.compile(r"[^:/?#]*://([^/?#]*)")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
# The kinds of non-public addresses (``_address_kind``), as a refusal names them.
ADDRESS_KINDS = {
    "loopback": gettext_lazy("loopback"),
    "unspecified": gettext_lazy("unspecified"),
    "link-local": gettext_lazy("link-local"),
    "multicast": gettext_lazy("multicast"),
    "private": gettext_lazy("private"),
    "reserved": gettext_lazy("reserved"),
    "non-public": gettext_lazy("non-public"),
}


def parse_url(value: str) -> httpx.URL:
    """The URL the node will call, parsed as the client parses it; ``ValueError`` says why not.

    The messages here and below are in the active language: a request's when a
    definition is validated, English (none active) when a running node fails.
    """
    authority = _AUTHORITY.match(value)
    if authority and "[" in authority[1] and "]" not in authority[1]:
        raise ValueError(_("has a '[' without its ']'; write an IPv6 host as http://[::1]:8080/."))
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL as exc:
        raise ValueError(_("is not a valid URL: %(error)s.") % {"error": exc}) from exc
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(_("must be an absolute http:// or https:// URL."))
    if url.port is not None and not 0 < url.port < 65536:
        raise ValueError(
            _("has port %(port)d; a port is a number from 1 to 65535.") % {"port": url.port}
        )
    if literal_address(url.host) is None and not _HOST_NAME.fullmatch(url.raw_host.decode()):
        raise ValueError(
            _("has host %(host)s, which is neither a host name nor an address.")
            % {"host": repr(url.host)}
        )
    return url


def host_allowed(url: httpx.URL) -> bool:
    """Whether ``EXECUTIONS_HTTP_ALLOWED_HOSTS`` lets nodes call this URL's host."""
    allowed = settings.EXECUTIONS_HTTP_ALLOWED_HOSTS
    if "*" in allowed:
        return True
    host = url.host.lower()
    port = url.port or (443 if url.scheme == "https" else 80)
    return host in allowed or f"{host}:{port}" in allowed


def host_refusal(url: httpx.URL) -> str:
    return _(
        "host %(host)s is not allowed; an operator can add it to EXECUTIONS_HTTP_ALLOWED_HOSTS."
    ) % {"host": repr(url.host)}


def header_problem(name: str, value: str) -> str | None:
    """Why the node may not send this header, or ``None``."""
    lowered = name.lower()
    if lowered in FORBIDDEN_HEADERS or lowered.startswith("proxy-"):
        return _("header %(name)s is not allowed: the client sets it; remove it.") % {
            "name": repr(name)
        }
    if not _TOKEN.fullmatch(name):
        return _("header name %(name)s is not a valid HTTP header name.") % {"name": repr(name)}
    if not _HEADER_VALUE.fullmatch(value):
        return _("header %(name)s may hold printable ASCII only (no line breaks).") % {
            "name": repr(name)
        }
    return None


def sendable_headers(headers: dict[str, str]) -> dict[str, str]:
    """``headers`` without the ones the client sets itself."""
    return {name: value for name, value in headers.items() if header_problem(name, value) is None}


def literal_address(host: str) -> IPAddress | None:
    """The address a numeric host (``127.1``, ``0x7f.1``, ``2130706433``, ``::1``) stands for."""
    try:
        info = socket.getaddrinfo(host, None, flags=socket.AI_NUMERICHOST)
    except (socket.gaierror, UnicodeError, ValueError):
        return None
    return _sockaddr_address(info[0][4])


def allowed_networks() -> list[IPNetwork]:
    """``EXECUTIONS_HTTP_ALLOWED_NETWORKS`` parsed; ``NodeFailed`` names a bad entry."""
    networks = []
    for entry in settings.EXECUTIONS_HTTP_ALLOWED_NETWORKS:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError as exc:
            raise NodeFailed(
                f"EXECUTIONS_HTTP_ALLOWED_NETWORKS has {entry!r}, which is not a network "
                "such as 10.0.0.0/8 or fd00::/8; an operator must correct it."
            ) from exc
    return networks


def address_refusal(host: str, address: IPAddress) -> str | None:
    """Why the node may not connect to ``address`` (which ``host`` stands for), or ``None``."""
    networks = allowed_networks()
    if any(candidate in network for candidate in _forms(address) for network in networks):
        return None
    for candidate in _forms(address):
        kind = _address_kind(candidate)
        if kind is not None:
            shown = host if host == str(address) else f"{host!r} ({address})"
            return _(
                "%(address)s is a %(kind)s address; the node calls public addresses only. An "
                "operator can allow its network in EXECUTIONS_HTTP_ALLOWED_NETWORKS."
            ) % {"address": shown, "kind": ADDRESS_KINDS[kind]}
    return None


async def resolve(host: str, port: int) -> list[IPAddress]:
    """The addresses ``host`` resolves to, in the resolver's order, without blocking the loop."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise NodeFailed(f"could not resolve host {host!r}: {exc}; check the URL.") from exc
    addresses = [_sockaddr_address(info[4]) for info in infos]
    return list(dict.fromkeys(addresses))


async def checked_addresses(url: httpx.URL) -> list[IPAddress]:
    """Resolve the URL's host once; ``NodeFailed`` when any address it gives is refused."""
    port = url.port or (443 if url.scheme == "https" else 80)
    addresses = await resolve(url.raw_host.decode("ascii"), port)
    for address in addresses:
        refusal = address_refusal(url.host, address)
        if refusal is not None:
            raise NodeFailed(refusal)
    return addresses


def _sockaddr_address(sockaddr: tuple) -> IPAddress:
    return ipaddress.ip_address(sockaddr[0].split("%")[0])


def _forms(address: IPAddress) -> list[IPAddress]:
    """The address and the IPv4 address it carries, for IPv6 forms that embed one."""
    if isinstance(address, ipaddress.IPv4Address):
        return [address]
    embedded = [address.ipv4_mapped, address.sixtofour, *(address.teredo or ())]
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):
        embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    found = [candidate for candidate in embedded if candidate is not None]
    # A mapped or translated address reaches the IPv4 one: that one decides.
    if address.ipv4_mapped is not None or address in _NAT64:
        return found
    return [*found, address]


def _address_kind(address: IPAddress) -> str | None:
    """The kind of a non-public address (``"loopback"``, ...), or ``None`` for a public one."""
    kinds = [
        ("loopback", address.is_loopback),
        ("unspecified", address.is_unspecified),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private and not address.is_reserved),
        ("reserved", address.is_reserved),
        ("non-public", not address.is_global),
    ]
    return next((kind for kind, matches in kinds if matches), None)
