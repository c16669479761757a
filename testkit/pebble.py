"""Pebble, Let's Encrypt's ACME test server (Debian ``pebble``), run on loopback for a
test with a config of its own.

Its ACME listener gets a certificate from a small CA made here (Pebble ships none in
Debian's package); the certificates it issues chain to a root Pebble makes anew at each
start, read from its management interface (``issuing_root``). Challenges are validated
at ``http_port`` (HTTP-01) and ``tls_port`` (TLS-ALPN-01) of the address the names
resolve to, asked of ``dns_server``. ``validity`` (seconds) makes its certificates
short-lived, so renewals happen while a test waits.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import ssl
import subprocess
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from testkit.harness import free_port, require_binary, stop_process, wait_until_answers


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def listener_certificate(root: Path) -> tuple[Path, Path, Path]:
    """(CA, certificate, key) PEM files for a TLS listener on 127.0.0.1 and localhost."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("slipway test pebble listener CA"))
        .issuer_name(_name("slipway test pebble listener CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = root / "listener-ca.pem", root / "listener.pem", root / "listener-key.pem"
    paths[0].write_bytes(_pem(ca))
    paths[1].write_bytes(_pem(cert))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


class Pebble:
    def __init__(
        self, root: Path, *, http_port: int, tls_port: int, dns_server: str, validity: int
    ) -> None:
        self.root = root
        self.binary = require_binary("pebble")
        self.port = free_port()
        self.management_port = free_port()
        self.directory = f"https://127.0.0.1:{self.port}/dir"
        self.listener_ca, cert, key = listener_certificate(root)
        self.config = root / "pebble-config.json"
        self.config.write_text(
            json.dumps(
                {
                    "pebble": {
                        "listenAddress": f"127.0.0.1:{self.port}",
                        "managementListenAddress": f"127.0.0.1:{self.management_port}",
                        "certificate": str(cert),
                        "privateKey": str(key),
                        "httpPort": http_port,
                        "tlsPort": tls_port,
                        "ocspResponderURL": "",
                        "externalAccountBindingRequired": False,
                        "certificateValidityPeriod": validity,
                    }
                }
            )
        )
        self.dns_server = dns_server
        self.log = root / "pebble.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> Pebble:
        env = {
            **os.environ,
            "PEBBLE_VA_NOSLEEP": "1",  # validate at once, not after a random sleep
            "PEBBLE_WFE_NONCEREJECT": "0",  # no nonces refused on purpose
            "PEBBLE_AUTHZREUSE": "0",  # every order, renewals too, is validated again
        }
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [self.binary, "-config", str(self.config), "-dnsserver", self.dns_server],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        wait_until_answers(
            self.directory,
            "pebble",
            self.process,
            self.log,
            get=lambda: httpx.get(self.directory, verify=self._trust(), timeout=2),
        )
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None

    def _trust(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.listener_ca))

    def issuing_root(self) -> str:
        """The PEM root the certificates it issues chain to (new at each start)."""
        url = f"https://127.0.0.1:{self.management_port}/roots/0"
        reply = httpx.get(url, verify=self._trust(), timeout=5)
        reply.raise_for_status()
        return reply.text

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")
