"""HTTP to places someone else chose (a webhook URL a marketer typed, a push
endpoint a browser sent), never to Waymark's own network.

The host is resolved once; every address it resolves to must be public (not
private, loopback, link-local, multicast, reserved or unspecified), and the
connection is made to the address that was checked, so DNS cannot answer
differently a moment later (rebinding). TLS still verifies the certificate
against the host name. Redirects are not followed, and proxies from the
environment are not used: either would connect somewhere unchecked. This is
the approach of `advocate` and of healthchecks' webhook transport, which
checks the address curl is about to connect to.

WAYMARK_WEBHOOK_ALLOWED_NETWORKS lets through the networks it names (CIDRs,
e.g. an internal service's 10.20.0.0/16), and WAYMARK_WEBHOOK_ALLOW_PRIVATE
turns the address check off altogether (deployments that call services on
their own network on purpose).

`request_following_redirects` follows redirects itself, a few at most, each
hop's URL checked (http or https only) and its host resolved and checked
again like the first.
"""

import ipaddress
import socket
from urllib.parse import urljoin, urlsplit

import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util import connection as urllib3_connection


class ForbiddenAddress(Exception):
    """The host resolves to an address Waymark does not call.

    Deliberately not an OSError: urllib3 and requests would take it for a
    network failure and retry it."""


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to, in the resolver's order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone id is not the address
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


def allowed_networks() -> list:
    """The networks WAYMARK_WEBHOOK_ALLOWED_NETWORKS lets through, parsed."""
    networks = []
    for text in settings.WAYMARK_WEBHOOK_ALLOWED_NETWORKS:
        try:
            networks.append(ipaddress.ip_network(str(text).strip(), strict=False))
        except ValueError as exc:
            raise ImproperlyConfigured(
                f"WAYMARK_WEBHOOK_ALLOWED_NETWORKS: {text!r} is not a network ({exc})."
            ) from None
    return networks


def is_allowed(address: str) -> bool:
    """Whether Waymark may connect to `address`: public, or in an allowed network."""
    if settings.WAYMARK_WEBHOOK_ALLOW_PRIVATE or is_public(address):
        return True
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    candidates = [ip] if ip.version == 4 or ip.ipv4_mapped is None else [ip, ip.ipv4_mapped]
    return any(
        candidate in network
        for network in allowed_networks()
        for candidate in candidates
        if candidate.version == network.version
    )


class _CheckedConnectionMixin:
    def _new_conn(self) -> socket.socket:
        try:
            addresses = resolve(self._dns_host, self.port)
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc
        for address in addresses:
            if not is_allowed(address):
                raise ForbiddenAddress(
                    f"{self.host} resolves to {address}, a private or reserved address: "
                    "Waymark does not call those (WAYMARK_WEBHOOK_ALLOWED_NETWORKS)."
                )
        error = None
        for address in addresses:
            try:
                return urllib3_connection.create_connection(
                    (address, self.port),
                    self.timeout,
                    source_address=self.source_address,
                    socket_options=self.socket_options,
                )
            except TimeoutError as exc:
                error = ConnectTimeoutError(
                    self, f"Connection to {self.host} timed out (connect timeout={self.timeout})"
                )
                error.__cause__ = exc
            except OSError as exc:
                error = NewConnectionError(self, f"Failed to connect to {self.host}: {exc}")
                error.__cause__ = exc
        raise error or NewConnectionError(self, f"{self.host} resolves to no address")


class _CheckedHTTPConnection(_CheckedConnectionMixin, HTTPConnection):
    pass


class _CheckedHTTPSConnection(_CheckedConnectionMixin, HTTPSConnection):
    pass


class _CheckedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _CheckedHTTPConnection


class _CheckedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _CheckedHTTPSConnection


class _CheckedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _CheckedHTTPConnectionPool,
            "https": _CheckedHTTPSConnectionPool,
        }


class CheckedSession(requests.Session):
    """A requests session that only connects to public addresses (see above).

    Raises ForbiddenAddress before anything is sent to a forbidden one; a
    redirect comes back as the 3xx response it is.
    """

    def __init__(self):
        super().__init__()
        self.trust_env = False
        adapter = _CheckedAdapter()
        self.mount("http://", adapter)
        self.mount("https://", adapter)

    def request(self, method, url, *args, **kwargs):
        kwargs["allow_redirects"] = False
        return super().request(method, url, *args, **kwargs)


class RedirectRefused(Exception):
    """A chain of redirects longer than Waymark follows, or one to a URL it does not call."""


REDIRECT_STATUSES = (301, 302, 303, 307, 308)


def request_following_redirects(
    session: CheckedSession, method: str, url: str, *, max_redirects: int = 5, **kwargs
) -> requests.Response:
    """Send a request through `session`, following up to `max_redirects` redirects.

    Each hop goes through the session again, so its host is resolved and
    checked like the first (ForbiddenAddress before anything is sent there).
    Only http and https are followed. As browsers do, 303 (and 301/302 after
    a POST) go on as a GET without a body; 307 and 308 keep the method and
    body. Authorization is not carried to another host. Returns the first
    response that is not a redirect; raises RedirectRefused.
    """
    headers = dict(kwargs.pop("headers", None) or {})
    for _ in range(max_redirects + 1):
        response = session.request(method, url, headers=headers, **kwargs)
        location = response.headers.get("Location")
        if response.status_code not in REDIRECT_STATUSES or not location:
            return response
        response.close()
        target = urljoin(url, location)
        parts = urlsplit(target)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RedirectRefused(
                f"Redirected to {target[:200]!r}: only http and https are followed."
            )
        if urlsplit(url).netloc.lower() != parts.netloc.lower():
            headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        if response.status_code == 303 or (
            response.status_code in (301, 302) and method.upper() == "POST"
        ):
            method = "GET"
            kwargs.pop("data", None)
            headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        url = target
    raise RedirectRefused(f"More than {max_redirects} redirects (the last to {url[:200]!r}).")
