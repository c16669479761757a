"""ACME for real: Pebble (Let's Encrypt's test CA, Debian ``pebble``) issues the
certificate of a custom domain to Caddy's ACME issuer, validating the name through the
test's DNS server by HTTP-01 (on http_port) or TLS-ALPN-01 (on https_port), with both
data planes (Caddy alone; HAProxy on http_port passing the challenge to Caddy). A user
sees the domain ACTIVE through boto3 and ``curl --cacert <pebble root>`` succeed; with
Pebble's short validity Caddy renews the certificate, and the new one serves."""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from testkit.dnsserver import DnsServer
from testkit.harness import (
    CaddyProcess,
    curl_https,
    image_source,
    running_caddy,
    stop_haproxy,
    wait_for,
    wait_status,
)
from testkit.pebble import Pebble

pytestmark = pytest.mark.e2e

VALIDITY = 45  # seconds: Caddy renews in the last third of a certificate's life
# HTTP-01 on http_port, carried by either data plane; TLS-ALPN-01 on https_port, which
# Caddy holds whatever the plane, with the default data plane (whichever it is).
CASES = [("caddy", "http-01"), ("haproxy", "http-01"), ("default", "tls-alpn-01")]


@pytest.fixture(scope="module", params=CASES, ids=[f"{p}-{c}" for p, c in CASES])
def case(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(data plane, or "default" for the agent's own; the one ACME challenge allowed)."""
    return request.param


@pytest.fixture(scope="module")
def caddy_server(
    case: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CaddyProcess]:
    """A Caddy per case (overrides the session's): its certificate storage starts empty,
    and Pebble validates on its ports."""
    with running_caddy(tmp_path_factory.mktemp("caddy")) as process:
        yield process


@pytest.fixture(scope="module")
def pebble(
    caddy_server: CaddyProcess, dns_server: DnsServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pebble]:
    process = Pebble(
        tmp_path_factory.mktemp("pebble"),
        http_port=caddy_server.http_port,
        tls_port=caddy_server.https_port,
        dns_server=dns_server.address,
        validity=VALIDITY,
    ).start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def pebble_root(pebble: Pebble) -> Path:
    """Pebble's issuing root, as a user would download it to trust it."""
    path = pebble.root / "issuing-root.pem"
    path.write_text(pebble.issuing_root())
    return path


@pytest.fixture(scope="module")
def reap_haproxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Requested before ``agent``, so this ends after it: the HAProxy an agent started
    (it outlives the agent on purpose) is stopped."""
    yield
    stop_haproxy(tmp_path_factory.getbasetemp())


def AGENT_SETTINGS(request: pytest.FixtureRequest) -> dict:  # noqa: N802 - conftest's name
    plane, challenge = request.getfixturevalue("case")
    pebble: Pebble = request.getfixturevalue("pebble")
    # Caddy trusts Pebble's listener; the agent's domain check trusts the certificates
    # Pebble issues: one private CA's file holds both roots.
    trust = pebble.root / "acme-ca-root.pem"
    trust.write_text(
        pebble.listener_ca.read_text() + request.getfixturevalue("pebble_root").read_text()
    )
    return {
        **({} if plane == "default" else {"data_plane": plane}),
        "haproxy_backends": 4,
        "tls_issuer": "acme",
        "acme_ca": pebble.directory,
        "acme_ca_root": str(trust),
        "acme_email": "ops@acme.test",
        "acme_challenges": challenge,
        "tls_renew_interval": 1,
        "https_port": request.getfixturevalue("caddy_server").https_port,
        "dns_resolver": request.getfixturevalue("dns_server").address,
        "domain_check_interval": 0.5,
    }


def served_certificate(agent, name: str, root: Path) -> x509.Certificate:
    """The certificate Caddy presents for ``name``, verified against ``root``."""
    context = ssl.create_default_context(cafile=str(root))
    with (
        socket.create_connection(("127.0.0.1", agent.caddy.https_port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=name) as tls,
    ):
        return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))


def challenges_tried(caddy: CaddyProcess, name: str) -> set[str]:
    """The challenge types Caddy's ACME client tried for ``name``, from its log."""
    found = set()
    for line in caddy.log.read_text(errors="replace").splitlines():
        if line.startswith("{") and "challenge_type" in line:
            entry = json.loads(line)
            if entry.get("identifier") == name:
                found.add(entry["challenge_type"])
    return found


def test_pebble_issues_the_domain_a_certificate_and_caddy_renews_it(
    case, reap_haproxy, agent, dns_server, pebble, pebble_root, hello_image
):
    plane, challenge = case
    client = agent.client()
    service = f"acme-{plane}-{challenge.removesuffix('-01').replace('-', '')}"
    created = client.create_service(
        ServiceName=service,
        SourceConfiguration=image_source(
            hello_image, RuntimeEnvironmentVariables={"GREETING": service}
        ),
        HealthCheckConfiguration={"Protocol": "HTTP", "Path": "/health", "Interval": 1},
    )
    arn = created["Service"]["ServiceArn"]
    wait_status(client, arn, "RUNNING")

    name = f"{service}.acme.test"
    dns_server.point(name, "127.0.0.1")
    client.associate_custom_domain(ServiceArn=arn, DomainName=name, EnableWWWSubdomain=False)

    def active() -> dict | None:
        [domain] = client.describe_custom_domains(ServiceArn=arn)["CustomDomains"]
        assert domain["Status"] != "CREATE_FAILED", domain
        return domain if domain["Status"] == "ACTIVE" else None

    domain = wait_for(active, 120, f"{name} ACTIVE")
    assert [r["Status"] for r in domain["CertificateValidationRecords"]] == ["SUCCESS"]
    assert f"GREETING={service}" in curl_https(agent, pebble_root, name)
    first = served_certificate(agent, name, pebble_root)
    assert first.issuer != first.subject and "Pebble" in first.issuer.rfc4514_string()
    lifetime = first.not_valid_after_utc - first.not_valid_before_utc
    assert lifetime.total_seconds() <= VALIDITY + 1
    assert challenges_tried(agent.caddy, name) == {challenge}
    assert name in pebble.log_text()  # Pebble validated it, asking the test's DNS server
    assert name in dns_server.queries

    renewed = wait_for(
        lambda: (
            (c := served_certificate(agent, name, pebble_root)).serial_number != first.serial_number
            and c
        ),
        VALIDITY * 3,
        "Caddy to renew the certificate (a new serial)",
    )
    assert renewed.not_valid_after_utc > first.not_valid_after_utc
    assert f"GREETING={service}" in curl_https(agent, pebble_root, name)
    assert client.describe_custom_domains(ServiceArn=arn)["CustomDomains"][0]["Status"] == "ACTIVE"
