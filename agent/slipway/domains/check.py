"""The two honest checks behind a custom domain's status: does its DNS point at this host,
and does Caddy present a certificate for it that a client trusts.

Each answers a ``Check`` (ok, or the reason a user can act on) and never raises: a
DNS server that does not answer or a Caddy that refuses the handshake is a reason to
stay pending, not an error. ``Checker`` is the seam unit tests replace.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import dns.exception
import dns.resolver

from ..errors import SlipwayError

log = logging.getLogger("slipway.domains")

ADDRESSES_TTL = 30.0  # seconds the host's own addresses are remembered


@dataclass(frozen=True)
class Check:
    ok: bool
    reason: str = ""


class Checker(Protocol):
    def dns(self, name: str) -> Check: ...

    def tls(self, name: str) -> Check: ...


def split_server(server: str) -> tuple[str, int]:
    """``host:port``, ``[v6]:port`` or a bare address (port 53)."""
    if server.startswith("["):
        host, _, rest = server[1:].partition("]")
        return host, int(rest.lstrip(":") or 53)
    if server.count(":") == 1:
        host, port = server.split(":")
        return host, int(port)
    return server, 53


def own_addresses() -> set[str]:
    """Every address on this host's interfaces (``ip -j addr``), else what its hostname
    resolves to; loopback always counts."""
    found = {"127.0.0.1", "::1"}
    try:
        out = subprocess.run(
            ["ip", "-j", "addr", "show"], check=True, capture_output=True, text=True, timeout=5
        ).stdout
        for link in json.loads(out):
            found.update(a["local"] for a in link.get("addr_info", []) if a.get("local"))
        return found
    except (OSError, subprocess.SubprocessError, ValueError, KeyError, TypeError) as exc:
        log.debug("ip -j addr failed (%s); using the hostname's addresses", exc)
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None):
            found.add(str(info[4][0]))
    except OSError:
        pass
    return found


def _normal(address: str) -> str:
    try:
        return str(ipaddress.ip_address(address.split("%", 1)[0]))
    except ValueError:
        return address


class DomainCheck:
    """Real checks: DNS through ``resolver`` (``host:port``; "" = the system's), TLS by
    a handshake with Caddy's HTTPS port verified against ``ca_root()``'s PEM (None: the
    system's trust store)."""

    def __init__(
        self,
        *,
        resolver: str,
        host_addresses: Iterable[str],
        tls_host: str,
        https_port: int,
        ca_root: Callable[[], str | None],
        timeout: float = 3.0,
    ) -> None:
        self.resolver = resolver
        self.configured_addresses = {_normal(a) for a in host_addresses if a}
        self.tls_host = tls_host
        self.https_port = https_port
        self.ca_root = ca_root
        self.timeout = timeout
        self._addresses: tuple[float, set[str]] = (0.0, set())

    def host_addresses(self) -> set[str]:
        if self.configured_addresses:
            return self.configured_addresses
        at, addresses = self._addresses
        if time.monotonic() - at > ADDRESSES_TTL or not addresses:
            addresses = {_normal(a) for a in own_addresses()}
            self._addresses = (time.monotonic(), addresses)
        return addresses

    def _resolver(self) -> dns.resolver.Resolver:
        if not self.resolver:
            resolver = dns.resolver.Resolver()
        else:
            host, port = split_server(self.resolver)
            resolver = dns.resolver.Resolver(configure=False)
            resolver.nameservers = [host]
            resolver.port = port
        resolver.lifetime = self.timeout
        return resolver

    def dns(self, name: str) -> Check:
        try:
            resolver = self._resolver()
            addresses: list[str] = []
            for rdtype in ("A", "AAAA"):
                try:
                    answer = resolver.resolve(name, rdtype, search=False)
                except dns.resolver.NoAnswer:
                    continue
                addresses += [_normal(r.address) for r in answer]
        except dns.resolver.NXDOMAIN:
            return Check(False, f"{name} does not exist in DNS yet")
        except (dns.exception.DNSException, OSError, ValueError) as exc:
            return Check(False, f"DNS lookup of {name} failed: {exc}")
        if not addresses:
            return Check(False, f"{name} has no A or AAAA record yet")
        ours = self.host_addresses()
        foreign = sorted(set(addresses) - ours)
        if foreign:
            return Check(
                False,
                f"{name} resolves to {', '.join(foreign)}, which is not this host "
                f"({', '.join(sorted(ours))})",
            )
        return Check(True)

    def tls(self, name: str) -> Check:
        try:
            pem = self.ca_root()
            context = ssl.create_default_context(cadata=pem or None)
        except (ssl.SSLError, ValueError) as exc:
            return Check(False, f"the CA to verify {name}'s certificate is not usable: {exc}")
        except (SlipwayError, OSError) as exc:  # Caddy's pki endpoint, a root file
            return Check(False, f"the CA to verify {name}'s certificate is unknown: {exc}")
        try:
            with (
                socket.create_connection((self.tls_host, self.https_port), self.timeout) as raw,
                context.wrap_socket(raw, server_hostname=name) as tls,
            ):
                tls.getpeercert()
        except ssl.SSLCertVerificationError as exc:
            return Check(False, f"the certificate for {name} is not trusted: {exc.verify_message}")
        except (ssl.SSLError, OSError) as exc:
            return Check(False, f"no certificate for {name} yet ({exc})")
        return Check(True)
