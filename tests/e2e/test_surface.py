"""The agent's local surface, attacked for real: Caddy's admin API only on a root-only
unix socket (no TCP port to reach, no other user opens it) while the agent drives it;
notification targets aimed at Caddy's admin API, a metadata server or the private
network refused at creation while an allowed receiver of the test's own gets events;
on-demand certificates of a wildcard only for names that resolve to this host, within
the wildcard's hourly budget."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from collections.abc import Iterator

import httpx
import pytest
from typer.testing import CliRunner

from slipway.cli import app
from testkit.harness import CaddyProcess, image_source, running_caddy, wait_for, wait_status
from testkit.hostile import METADATA, metadata_server
from testkit.receiver import Receiver, receiving

pytestmark = pytest.mark.e2e

PER_HOUR = 3  # certificates on demand per wildcard per hour (the probe host is one)
NOTHING = {"source": ["slipway.test.never"]}  # a refused target, if stored, gets nothing
# What another local user would do to stop every service: POST /stop to the admin API.
STOP_CADDY = """
import socket, sys
try:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(sys.argv[1])
        sock.sendall(b"POST /stop HTTP/1.1\\r\\nHost: \\r\\nContent-Length: 0\\r\\n\\r\\n")
        print(sock.recv(100).decode().splitlines()[0])
except OSError as exc:
    print(type(exc).__name__)
"""


@pytest.fixture(scope="module")
def caddy_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CaddyProcess]:
    """This module's own Caddy (overrides the session's): its admin API is a socket only."""
    with running_caddy(tmp_path_factory.mktemp("caddy"), admin_socket=True) as process:
        yield process


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with receiving() as r:
        yield r


def AGENT_SETTINGS(request: pytest.FixtureRequest) -> dict:  # noqa: N802 - conftest's name
    return {
        "outbound_allow": f"127.0.0.1:{request.getfixturevalue('receiver').port}",
        "tls_issuer": "internal",
        "https_port": request.getfixturevalue("caddy_server").https_port,
        "dns_resolver": request.getfixturevalue("dns_server").address,
        "domain_check_interval": 0.5,
        "ondemand_certs_per_hour": PER_HOUR,
    }


def caddy_tcp_ports(pid: int) -> set[int]:
    """The TCP ports the Caddy process listens on."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    return {
        int(line.split()[3].rpartition(":")[2])
        for line in out.splitlines()
        if f"pid={pid}," in line
    }


def test_agent_drives_caddy_through_a_root_only_socket(agent, hello_image):
    caddy = agent.caddy
    assert agent.env["SLIPWAY_CADDY_ADMIN"] == f"unix/{caddy.admin_socket}"
    client = agent.client()
    arn = client.create_service(
        ServiceName="through-socket", SourceConfiguration=image_source(hello_image)
    )["Service"]["ServiceArn"]
    wait_status(client, arn, "RUNNING")
    assert agent.get("through-socket").status_code == 200  # routed by the loaded config

    config = caddy.admin_get("/config/").json()
    assert config["admin"] == {"listen": f"unix/{caddy.admin_socket}"}  # kept by every load
    assert stat.S_IMODE(os.stat(caddy.admin_socket).st_mode) == 0o600
    assert caddy.process is not None
    # No admin port at all; its HTTP server is behind HAProxy on a socket (the default
    # data plane), or on http_port (data_plane: caddy).
    assert caddy_tcp_ports(caddy.process.pid) <= {caddy.http_port}

    # Another local user cannot open the socket: nothing to stop Caddy with.
    attack = subprocess.run(
        [
            "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
            "/usr/bin/python3", "-c", STOP_CADDY, str(caddy.admin_socket),
        ],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert attack.stdout.strip() == "PermissionError", attack
    assert caddy.process.poll() is None
    assert agent.get("through-socket").status_code == 200


def test_notification_targets_are_guarded(agent, hello_image, receiver, tmp_path):
    runner = CliRunner()
    pattern = tmp_path / "pattern.json"

    def notify_add(url: str, wanted: dict) -> tuple[int, str]:
        pattern.write_text(json.dumps(wanted))
        result = runner.invoke(
            app, ["notify", "add", url, "--pattern", str(pattern)], env=agent.env
        )
        return result.exit_code, result.output

    with metadata_server() as metadata:
        refused = {
            "http://localhost:2019/stop": "loopback",
            f"http://{METADATA}:{metadata.server_address[1]}/latest/meta-data/": "link-local",
            "http://10.1.2.3/": "private",
            f"unix://{agent.caddy.admin_socket}": "not an http:// or https:// URL",
        }
        for url, why in refused.items():
            code, output = notify_add(url, NOTHING)
            assert code == 1, output
            assert "InvalidRequestException" in output and why in output, output
            assert url in output  # the message names the target

        code, output = notify_add(
            f"http://127.0.0.1:{receiver.port}/hook",
            {
                "source": ["aws.apprunner"],
                "detail-type": ["AppRunner Service Operation Status Change"],
            },
        )
        assert code == 0, output
        listed = runner.invoke(app, ["notify", "list", "--json"], env=agent.env)
        assert [t["Url"] for t in json.loads(listed.output)] == [
            f"http://127.0.0.1:{receiver.port}/hook"
        ]

        client = agent.client()
        arn = client.create_service(
            ServiceName="notified", SourceConfiguration=image_source(hello_image)
        )["Service"]["ServiceArn"]
        wait_status(client, arn, "RUNNING")
        wait_for(
            lambda: (
                receiver.statuses("notified")
                == ["CreateServiceStarted", "CreateServiceCompletedSuccessfully"]
            ),
            30,
            "the allowed receiver to get the service's events",
        )
        assert metadata.RequestHandlerClass.peers == []  # events went out; none came here


def test_on_demand_certificates_only_for_names_that_resolve_here(
    agent, hello_image, dns_server, tmp_path
):
    client = agent.client()
    arn = client.create_service(ServiceName="wild", SourceConfiguration=image_source(hello_image))[
        "Service"
    ]["ServiceArn"]
    wait_status(client, arn, "RUNNING")
    dns_server.point("slipway-check.wild.test", "127.0.0.1")  # the probe host counts: 1
    for name in ("good.wild.test", "good2.wild.test", "good3.wild.test"):
        dns_server.point(name, "127.0.0.1")
    dns_server.point("evil.wild.test", "192.0.2.10")
    client.associate_custom_domain(ServiceArn=arn, DomainName="*.wild.test")

    def active() -> bool:
        (found,) = client.describe_custom_domains(ServiceArn=arn)["CustomDomains"]
        assert found["Status"] != "CREATE_FAILED", found
        return found["Status"] == "ACTIVE"

    wait_for(active, 60, "*.wild.test ACTIVE")
    ca_root = tmp_path / "root.pem"
    ca_root.write_text(agent.caddy.admin_get("/pki/ca/local").json()["root_certificate"])

    def handshake(host: str) -> subprocess.CompletedProcess:
        port = agent.caddy.https_port
        return subprocess.run(
            [
                "curl", "--silent", "--show-error", "--max-time", "15",
                "--cacert", str(ca_root), "--resolve", f"{host}:{port}:127.0.0.1",
                f"https://{host}:{port}/",
            ],
            capture_output=True,
            text=True,
        )  # fmt: skip

    def ask(host: str) -> int:
        url = f"{agent.endpoint}/slipway/v1/domains/ask"
        return httpx.get(url, params={"domain": host}, timeout=10).status_code

    # A name whose DNS points elsewhere: the agent says no, Caddy issues nothing.
    assert ask("evil.wild.test") == 403
    evil = handshake("evil.wild.test")
    assert evil.returncode != 0, evil.stdout
    assert re.search(r"SSL|TLS|alert", evil.stderr, re.I), evil.stderr
    assert "no certificate on demand for evil.wild.test" in agent.log_text()

    # Names that resolve here get certificates, up to the wildcard's hourly budget.
    assert handshake("good.wild.test").returncode == 0  # 2
    assert ask("good2.wild.test") == 200  # 3
    assert ask("good.wild.test") == 200  # approved before: costs nothing more
    assert ask("good3.wild.test") == 403  # resolves here, but the budget is spent
    assert handshake("good3.wild.test").returncode != 0
    assert "ondemand_certs_per_hour" in agent.log_text()
    # Nothing under the wildcard that Caddy does not serve, whatever its DNS.
    assert ask("good.other.test") == 403
