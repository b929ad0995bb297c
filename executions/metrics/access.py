"""Who may read a process's metrics: ``METRICS_TOKEN`` and ``METRICS_ALLOWED_ADDRESSES``.

A scrape may read them with ``Authorization: Bearer <METRICS_TOKEN>``, or
from an address in ``METRICS_ALLOWED_ADDRESSES`` (addresses and networks,
``127.0.0.1,10.0.0.0/8``): on a server the client's address as
``TRUSTED_PROXY_HOPS`` settles it (``project.clientaddr``), on a worker's
port the peer's. With neither set, anyone may while ``DEBUG`` is on and
nobody while it is off: the metrics tell how busy the service is and which
of its paths fail.
"""

import hmac
import ipaddress
import string

from django.conf import settings
from django.core import checks

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
TOKEN_CHARACTERS = frozenset(string.ascii_letters + string.digits + string.punctuation)
TOKEN_MIN_LENGTH = 16


def allowed_networks() -> list[Network]:
    """``METRICS_ALLOWED_ADDRESSES`` as networks; entries that are neither are left out
    (``check_metrics_settings`` names them)."""
    networks = []
    for entry in settings.METRICS_ALLOWED_ADDRESSES:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            continue
    return networks


def address_in(address: str | None, networks: list[Network]) -> bool:
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # an IPv4 client of a dual-stack listener
    return any(ip in network for network in networks)


def bearer_matches(authorization: str | None, token: str) -> bool:
    keyword, _, given = (authorization or "").partition(" ")
    return keyword.lower() == "bearer" and hmac.compare_digest(given.strip(), token)


def metrics_access_problem(*, address: str | None, authorization: str | None) -> str | None:
    """Why a scrape from ``address`` with this ``Authorization`` header may not read the
    metrics, or None when it may."""
    token = settings.METRICS_TOKEN
    networks = allowed_networks()
    if not token and not networks:
        if settings.DEBUG:
            return None
        return (
            "Metrics are closed: set METRICS_TOKEN (and scrape with Authorization: Bearer "
            "<the token>) or METRICS_ALLOWED_ADDRESSES (the scraper's address)."
        )
    if token and bearer_matches(authorization, token):
        return None
    if address_in(address, networks):
        return None
    ways = []
    if token:
        ways.append("send Authorization: Bearer <METRICS_TOKEN>")
    if networks:
        ways.append(f"scrape from an address in METRICS_ALLOWED_ADDRESSES (not {address})")
    return f"This scrape may not read the metrics: {' or '.join(ways)}."


@checks.register
def check_metrics_settings(**kwargs) -> list[checks.Error]:
    """Addresses that are not addresses, and a token that cannot be sent or guessed."""
    errors = []
    for entry in settings.METRICS_ALLOWED_ADDRESSES:
        try:
            ipaddress.ip_network(str(entry).strip(), strict=False)
        except ValueError:
            errors.append(
                checks.Error(
                    f"METRICS_ALLOWED_ADDRESSES holds {entry!r}, which is neither an IP "
                    "address nor a network: list them comma-separated, e.g. "
                    "127.0.0.1,10.0.0.0/8.",
                    id="executions.E160",
                )
            )
    token = settings.METRICS_TOKEN
    if token and (len(token) < TOKEN_MIN_LENGTH or not set(token) <= TOKEN_CHARACTERS):
        errors.append(
            checks.Error(
                f"METRICS_TOKEN must be at least {TOKEN_MIN_LENGTH} printable ASCII characters "
                "without spaces (it goes in an Authorization header); generate one with "
                'python -c "import secrets; print(secrets.token_urlsafe(32))".',
                id="executions.E161",
            )
        )
    return errors
