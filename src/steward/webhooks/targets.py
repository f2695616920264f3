"""Where a webhook may go: public addresses only, unless a network is explicitly allowed.

The host is resolved here and every address it resolves to is checked (IPv4 and IPv6, including
addresses embedded in IPv4-mapped, 6to4, Teredo and NAT64 ones); the request then connects to
the checked address itself, so a second DNS answer (rebinding) cannot redirect it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from steward.errors import ApiError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_URL_LENGTH = 2048
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class WebhookTargetRefused(ApiError):
    def __init__(self, detail: str) -> None:
        super().__init__(422, "webhook-target-refused", "Webhook target refused", detail)


@dataclass(frozen=True)
class PinnedTarget:
    """A checked destination: connect to `address`, but speak to `host` (Host header, SNI)."""

    url: str
    scheme: str
    host: str
    port: int
    address: IPAddress
    path: str

    @property
    def pinned_url(self) -> str:
        literal = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        return f"{self.scheme}://{literal}:{self.port}{self.path}"

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def parse_networks(cidrs: Sequence[str]) -> list[Network]:
    return [ipaddress.ip_network(cidr, strict=False) for cidr in cidrs]


def check_url(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path-with-query) of an acceptable webhook URL, or refuse it."""
    if len(url) > MAX_URL_LENGTH:
        raise WebhookTargetRefused(f"the webhook URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise WebhookTargetRefused(f"the webhook URL is malformed: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise WebhookTargetRefused("the webhook URL must be http:// or https://")
    if not parts.hostname:
        raise WebhookTargetRefused("the webhook URL has no host")
    if parts.username or parts.password:
        raise WebhookTargetRefused("the webhook URL must not carry credentials")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    default = 443 if parts.scheme == "https" else 80
    return parts.scheme, parts.hostname, port or default, path


def _embedded(address: IPAddress) -> list[IPAddress]:
    """The address and any IPv4 address it carries inside."""
    found: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            found.append(address.ipv4_mapped)
        if address.sixtofour is not None:
            found.append(address.sixtofour)
        if address.teredo is not None:
            found.extend(address.teredo)
        if address in _NAT64:
            found.append(ipaddress.IPv4Address(address.packed[-4:]))
    return found


def is_refused(address: IPAddress, allowed: Sequence[Network]) -> bool:
    """Whether `address` is private, loopback, link-local, multicast or otherwise non-public."""
    if any(address in network for network in allowed if network.version == address.version):
        return False
    return any(not a.is_global or a.is_multicast for a in _embedded(address))


async def resolve(url: str, allowed: Sequence[Network]) -> PinnedTarget:
    """Resolve and check every address of the URL's host; pin the first."""
    scheme, host, port, path = check_url(url)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise WebhookTargetRefused(f"the webhook host {host!r} does not resolve") from exc
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    if not addresses:
        raise WebhookTargetRefused(f"the webhook host {host!r} does not resolve")
    refused = sorted({str(a) for a in addresses if is_refused(a, allowed)})
    if refused:
        raise WebhookTargetRefused(
            f"the webhook host {host!r} resolves to non-public address(es) {', '.join(refused)}; "
            "allow a network with STEWARD_WEBHOOK_ALLOWED_NETWORKS to deliver there"
        )
    return PinnedTarget(url, scheme, host, port, addresses[0], path)
