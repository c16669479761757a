"""The guard on HTTP the agent sends to addresses that users give it.

A notification target is a URL that any API caller chooses, and the agent POSTs to
it as root on the host: pointed at ``http://localhost:2019/stop`` (Caddy's admin API
before it moved to a socket), a cloud's metadata service at 169.254.169.254, or a
database on the private network, it would make the agent the caller's proxy into
places the caller cannot reach. So such targets may name only public addresses,
unless the operator allow-lists a network or a host (setting ``outbound_allow``).

Checked twice: when the target is created (a literal address, or a name that resolves
to one, is refused with the reason) and when each connection is made, because a
name's DNS may change after the check: ``GuardedBackend`` resolves the name, checks
every address it got, and connects to one of those checked addresses (TLS still
verifies the name). Guarded clients use no proxy from the environment: the address
connected to must be the one checked.

Which flows are guarded, and how (README "Caddy's admin API and outgoing requests"):

- notification targets (API and config file): every non-public address;
- registries (their redirects and token realms too) and git remotes named in a
  service's source: link-local only (the metadata address), because the operator's
  own registry or git server on loopback or the private network is the usual case
  (``link_local_reason``);
- the GitHub API URL, ACME directory and Caddy: operator settings, trusted.
"""

from __future__ import annotations

import ipaddress
import socket
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpcore
import httpx

from .errors import InvalidRequest

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Not public, beyond what ``is_private`` covers: carrier-grade NAT (RFC 6598).
_SHARED = ipaddress.ip_network("100.64.0.0/10")


def _resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to now (IPv4 and IPv6)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def _address(text: str) -> Address:
    address = ipaddress.ip_address(text.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped  # ::ffff:127.0.0.1 is loopback too
    return address


def forbidden_reason(address: Address) -> str | None:
    """Why the agent must not send a user's request to ``address``; None: public."""
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address (a cloud's metadata service lives there)"
    if address.is_unspecified:
        return "the unspecified address (this host)"
    if address.is_multicast:
        return "a multicast address"
    if address.is_private or address in _SHARED:
        return "a private address"
    if address.is_reserved:
        return "a reserved address"
    return None


def link_local_reason(host: str) -> str | None:
    """For registries and git remotes: why ``host`` (a name or literal) must not be
    reached, when it is link-local; None otherwise. Names are not resolved here: the
    fence keeps builds away from link-local, and this check is about the agent's own
    requests to a literal metadata address."""
    try:
        address = _address(host.strip("[]"))
    except ValueError:
        return None
    if address.is_link_local:
        return f"{host} is a link-local address (a cloud's metadata service lives there)"
    return None


@dataclass(frozen=True)
class AllowEntry:
    """One ``outbound_allow`` entry: a network (``10.0.0.0/8``, ``127.0.0.1``) or a host
    name (``localhost``), either with an optional port (``localhost:9000``,
    ``[::1]:9000``; not with a prefix length)."""

    network: Network | None = None
    name: str | None = None
    port: int | None = None

    def covers(self, host: str, port: int, address: Address | None) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.name is not None:
            return host.lower().rstrip(".") == self.name
        return address is not None and self.network is not None and address in self.network


def parse_allow(entry: str) -> AllowEntry:
    """One entry of ``outbound_allow``, or InvalidRequest naming it."""
    text = entry.strip()
    where = f"outbound_allow: {entry!r}"
    try:
        return AllowEntry(network=ipaddress.ip_network(text, strict=False))
    except ValueError:
        pass
    parts = urlsplit(f"//{text}")
    try:
        port = parts.port
        host = parts.hostname or ""
    except ValueError as exc:
        raise InvalidRequest(f"{where} is not a network, address or host[:port]") from exc
    if not host or parts.path or parts.query or "@" in text:
        raise InvalidRequest(f"{where} is not a network, address or host[:port]")
    if port == 0:
        raise InvalidRequest(f"{where}: port 0 is no port")
    try:
        return AllowEntry(network=ipaddress.ip_network(host), port=port)
    except ValueError:
        return AllowEntry(name=host.lower().rstrip("."), port=port)


@dataclass(frozen=True)
class OutboundPolicy:
    """Which addresses user-given URLs may reach: public ones, and what ``allow`` names."""

    allow: tuple[str, ...] = ()
    resolver: Callable[[str, int], list[str]] = field(default=_resolve, compare=False)

    def check(self) -> None:
        """Refuse an allow-list entry that names nothing (the agent does not start)."""
        self.entries()

    def entries(self) -> list[AllowEntry]:
        return [parse_allow(entry) for entry in self.allow]

    def refusal(self, host: str, port: int, address: str | None) -> str | None:
        """Why ``host:port`` at ``address`` (None: a name not resolved) is refused."""
        parsed = _address(address) if address is not None else None
        if any(entry.covers(host, port, parsed) for entry in self.entries()):
            return None
        reason = forbidden_reason(parsed) if parsed is not None else None
        if reason is None:
            return None
        shown = host if host == address else f"{host} ({address})"
        return f"{shown} is {reason}; allow it with the setting outbound_allow"

    def check_url(self, url: str, where: str) -> None:
        """At creation: refuse ``url`` when it names, or resolves to, an address it may
        not reach. A name that does not resolve yet passes; its connections are checked."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            addresses = [str(_address(host))]
        except ValueError:
            try:
                addresses = self.resolver(host, port)
            except (OSError, UnicodeError):
                addresses = []
        for address in addresses:
            reason = self.refusal(host, port, address)
            if reason:
                raise InvalidRequest(f"{where}: {url!r} is refused: {reason}")

    def addresses(self, host: str, port: int) -> list[str]:
        """At connect time: ``host``'s addresses, each checked; OSError when one is
        refused (a name that answers with one bad address is not trusted at all)."""
        try:
            addresses = [str(_address(host))]
        except ValueError:
            addresses = self.resolver(host, port)
        if not addresses:
            raise OSError(f"{host} has no address")
        for address in addresses:
            reason = self.refusal(host, port, address)
            if reason:
                raise OSError(f"refused to connect: {reason}")
        return addresses


class GuardedBackend(httpcore.SyncBackend):
    """httpcore's network backend, connecting only to addresses the policy allows."""

    def __init__(self, policy: OutboundPolicy) -> None:
        self.policy = policy

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = self.policy.addresses(host, port)
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        last: Exception | None = None
        for address in addresses:
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:  # the next checked address, if any
                last = exc
        assert last is not None
        raise last


def guarded_transport(policy: OutboundPolicy) -> httpx.HTTPTransport:
    """An httpx transport whose every connection goes through ``GuardedBackend``."""
    transport = httpx.HTTPTransport()
    # httpx takes no network backend; its pool (httpcore.ConnectionPool) does.
    transport._pool._network_backend = GuardedBackend(policy)  # noqa: SLF001
    return transport
