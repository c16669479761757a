"""The settings of VPC connectors and private services, checked at start."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

from ..errors import InvalidRequest


def split_listen(listen: str) -> tuple[str, int] | None:
    """``host:port`` (an IPv4 address) as its parts; None when it is not one."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return None
    return host, int(port)


def is_local(address: str) -> bool:
    """Whether ``address`` is one of this host's (a socket can be bound to it); a bad
    private_listen would make every load of Caddy's config fail, all routes with it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((address, 0))
        except OSError:
            return False
    return True


@dataclass(frozen=True)
class VpcLimits:
    """``private_listen``: the address:port where Caddy serves private services (those
    with IsPubliclyAccessible false, at their VPC ingress connection's DomainName); ""
    means this host has no private listener, and private services are refused. The
    quotas bound the active connectors and ingress connections (App Runner's are
    account quotas; here they are the host's)."""

    private_listen: str = ""
    connector_quota: int = 10
    ingress_quota: int = 10

    def check(self, public_ports: tuple[int, ...] = ()) -> None:
        """Refuse settings that cannot work, naming the setting."""
        if self.private_listen:
            parts = split_listen(self.private_listen)
            if parts is None:
                raise InvalidRequest(
                    f"private_listen must be an IPv4 address and port like 10.0.0.5:8080,"
                    f" not {self.private_listen!r}"
                )
            if not is_local(parts[0]):
                raise InvalidRequest(
                    f"private_listen {self.private_listen}: {parts[0]} is not an address of"
                    " this host, so Caddy could not listen there"
                )
            if parts[1] in public_ports:
                raise InvalidRequest(
                    f"private_listen {self.private_listen}: port {parts[1]} is already"
                    " http_port or https_port; the private listener needs a port of its own"
                )
        for name, value in (
            ("vpc_connector_quota", self.connector_quota),
            ("vpc_ingress_quota", self.ingress_quota),
        ):
            if not 1 <= value <= 10_000:
                raise InvalidRequest(f"{name} must be between 1 and 10000, not {value}")
