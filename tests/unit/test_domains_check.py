"""The real DNS check against a loopback DNS server, and the TLS check's failures."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from slipway.domains.check import DomainCheck, own_addresses, split_server
from testkit.dnsserver import DnsServer


@pytest.fixture
def dns_server() -> Iterator[DnsServer]:
    server = DnsServer().start()
    try:
        yield server
    finally:
        server.stop()


def checker(resolver: str, https_port: int = 1, ca_root=lambda: None) -> DomainCheck:
    return DomainCheck(
        resolver=resolver,
        host_addresses=["127.0.0.1", "::1"],
        tls_host="127.0.0.1",
        https_port=https_port,
        ca_root=ca_root,
        timeout=1.0,
    )


def test_dns_points_here_or_says_why(dns_server: DnsServer) -> None:
    check = checker(dns_server.address)
    assert check.dns("example.com").reason == "example.com does not exist in DNS yet"
    dns_server.point("example.com", "192.0.2.7")
    reason = check.dns("example.com").reason
    assert "resolves to 192.0.2.7, which is not this host (127.0.0.1, ::1)" in reason
    dns_server.point("example.com", "127.0.0.1", "192.0.2.7")
    assert "192.0.2.7" in check.dns("example.com").reason  # every address must be ours
    dns_server.point("example.com", "127.0.0.1", "::1")
    assert check.dns("example.com").ok
    dns_server.point("*.example.org", "127.0.0.1")
    assert check.dns("slipway-check.example.org").ok


def test_dns_server_that_does_not_answer() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        check = checker(f"127.0.0.1:{port}").dns("example.com")
    assert not check.ok
    assert check.reason.startswith("DNS lookup of example.com failed")


def test_tls_check_reasons() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    check = checker("", https_port=port).tls("example.com")
    assert not check.ok and check.reason.startswith("no certificate for example.com yet")
    bad_ca = checker("", https_port=port, ca_root=lambda: "not a pem").tls("example.com")
    assert "not usable" in bad_ca.reason


def test_servers_and_own_addresses() -> None:
    assert split_server("127.0.0.1:5353") == ("127.0.0.1", 5353)
    assert split_server("[::1]:53") == ("::1", 53)
    assert split_server("10.0.0.2") == ("10.0.0.2", 53)
    assert {"127.0.0.1", "::1"} <= own_addresses()
