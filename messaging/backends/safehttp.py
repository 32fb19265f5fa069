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

WAYMARK_WEBHOOK_ALLOW_PRIVATE turns the address check off (tests, and
deployments that call services on their own network on purpose).
"""

import ipaddress
import socket

import requests
from django.conf import settings
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


class _CheckedConnectionMixin:
    def _new_conn(self) -> socket.socket:
        try:
            addresses = resolve(self._dns_host, self.port)
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc
        if not settings.WAYMARK_WEBHOOK_ALLOW_PRIVATE:
            for address in addresses:
                if not is_public(address):
                    raise ForbiddenAddress(
                        f"{self.host} resolves to {address}, a private or reserved address: "
                        "Waymark does not call those (WAYMARK_WEBHOOK_ALLOW_PRIVATE)."
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
