"""Who may reach the server and where it may send: the CDN's secret header, the proxies whose forwarded
headers count, and webhook targets that must be public addresses.

- ``--origin-secret`` (``HOMEFARM_ORIGIN_SECRET``): every request but the health checks must carry it as
  ``X-Origin-Verify``, compared in constant time; a CDN adds it (installer/server/aws), nobody else knows it,
  so an origin address found or inherited by someone else answers them nothing but 403.
- ``--forwarded-allow-ips``: the proxies whose ``X-Forwarded-Proto/Host/Prefix`` the server believes (default
  loopback, as uvicorn's own setting); a request with the origin secret came through the CDN and is believed
  too. From anyone else the headers are ignored: they could make the server hand out URLs to another host.
- A job's own ``webhook_url`` must resolve to public addresses only: no loopback, private, link-local (the
  cloud's metadata service at 169.254.169.254), unique-local or multicast ones, at submit and again at each
  delivery (DNS can change), unless ``--webhook-allow-private``.
"""

from __future__ import annotations

import hmac
import ipaddress
import socket
from typing import Callable
from urllib.parse import urlsplit

OPEN_PATHS = frozenset({"/api/health", "/api/ready"})  # a platform's health checks do not pass the CDN
ORIGIN_HEADER = "x-origin-verify"
LOOPBACK = "127.0.0.1,::1"


class OriginCheck:
    def __init__(self, secret: str | None, forwarded_allow_ips: str = LOOPBACK):
        self.secret = secret or None
        items = [item.strip() for item in forwarded_allow_ips.split(",") if item.strip()]
        self.any_proxy = "*" in items
        self.proxies = []
        for item in items:
            if item == "*":
                continue
            try:
                self.proxies.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ValueError(f"forwarded-allow-ips: {item!r} is not an address or a network such as "
                                 "10.0.0.0/8") from None

    def admits(self, path: str, headers: Callable[[str], str | None]) -> bool:
        """Whether a request for ``path`` with these headers may be answered at all."""
        if self.secret is None or path in OPEN_PATHS or any(path.endswith(p) for p in OPEN_PATHS):
            return True
        return self.from_cdn(headers)

    def from_cdn(self, headers: Callable[[str], str | None]) -> bool:
        given = headers(ORIGIN_HEADER)
        return self.secret is not None and given is not None and hmac.compare_digest(
            given.encode("utf-8", "replace"), self.secret.encode("utf-8"))

    def believes_forwarded(self, client_host: str | None, headers: Callable[[str], str | None]) -> bool:
        """Whether this request's X-Forwarded-* headers count: it came from an allowed proxy, or the CDN."""
        if self.any_proxy or self.from_cdn(headers):
            return True
        try:
            address = ipaddress.ip_address(client_host or "")
        except ValueError:
            return False
        return any(address in network for network in self.proxies)


class PrivateTarget(ValueError):
    """A webhook URL that leads to an address that is not public; the message says which and why."""


def check_public_target(url: str, resolve: Callable[..., list[tuple]] = socket.getaddrinfo) -> None:  # type: ignore[type-arg]
    """Raises PrivateTarget unless every address ``url``'s host resolves to is a public one."""
    host = urlsplit(url).hostname
    if not host:
        raise PrivateTarget("has no host")
    try:
        found = {info[4][0] for info in resolve(host, None, type=socket.SOCK_STREAM)}
    except (OSError, UnicodeError):
        raise PrivateTarget(f"{host} could not be resolved") from None
    for text in found:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        mapped = getattr(address, "ipv4_mapped", None)
        address = mapped or address
        if not address.is_global or address.is_multicast:
            raise PrivateTarget(f"{host} resolves to {address}, which is not a public address (loopback, a "
                                f"private or link-local network, or the cloud's metadata service)")
