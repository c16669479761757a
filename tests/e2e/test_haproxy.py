"""The HAProxy data plane (``data_plane: haproxy``) through the real parts: services
answer through HAProxy on http_port, a deployment under steady load on kept-alive
connections loses no request and reloads nothing, autoscaling reads HAProxy's
in-flight counts, a paused service and an unknown host answer as with Caddy, a custom
domain is served over HTTPS by Caddy and redirected there through HAProxy, and an
HAProxy that dies is started again with its routes."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from testkit.dnsserver import DnsServer
from testkit.harness import (
    Load,
    curl_https,
    haproxy_pids,
    image_source,
    live_containers,
    scaled_service,
    wait_for,
    wait_status,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def dns_server() -> Iterator[DnsServer]:
    server = DnsServer().start()
    try:
        yield server
    finally:
        server.stop()


def AGENT_SETTINGS(request: pytest.FixtureRequest) -> dict:  # noqa: N802 - conftest's name
    return {
        "data_plane": "haproxy",
        "haproxy_backends": 8,
        "scale_interval": 0.5,
        "scale_out_window": 2,
        "scale_in_cooldown": 5,
        "drain_seconds": 5,
        "tls_issuer": "internal",
        "https_port": request.getfixturevalue("caddy_server").https_port,
        "dns_resolver": request.getfixturevalue("dns_server").address,
        "domain_check_interval": 0.5,
        "metrics_interval": 0.5,
        "haproxy_latency_sample": 1,  # every request's latency: counts can be exact
    }


def runtime(agent, command: str) -> str:
    """One command to the agent's HAProxy over its Runtime API socket."""
    path = Path(agent.env["SLIPWAY_DATA_DIR"]) / "haproxy" / "api.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(str(path))
        sock.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def frontend_requests(agent) -> int:
    """Requests HAProxy's frontend on http_port has taken."""
    lines = runtime(agent, "show stat").splitlines()
    header = lines[0][2:].split(",")
    for line in lines[1:]:
        row = line.split(",")
        if row[:2] == ["slipway", "FRONTEND"]:
            return int(row[header.index("req_tot")])
    raise AssertionError("no slipway frontend in HAProxy's stats")


def test_service_answers_through_haproxy_and_deploys_without_loss(agent, hello_image, push_variant):
    client = agent.client()
    arn = client.create_service(
        ServiceName="steady",
        SourceConfiguration=image_source(hello_image),
        HealthCheckConfiguration={"Protocol": "HTTP", "Path": "/health", "Interval": 1},
    )["Service"]["ServiceArn"]
    wait_status(client, arn, "RUNNING")
    (pid,) = haproxy_pids(agent.root)
    before = frontend_requests(agent)
    answer = agent.get("steady")
    assert answer.status_code == 200
    assert frontend_requests(agent) == before + 1  # HAProxy carried it, on http_port

    push_variant(hello_image, APP_VERSION="2")
    with Load(agent, "steady", workers=4, slow_ms=50) as load:
        wait_for(lambda: len(load.answers) > 20, 30, "steady load")
        old = load.instances_since(0)
        client.start_deployment(ServiceArn=arn)
        wait_for(
            lambda: agent.get("steady", "/env/APP_VERSION").text.strip() == "2",
            120,
            "the new revision to answer",
        )
        wait_status(client, arn, "RUNNING")
        mark = len(load.answers)
        wait_for(lambda: len(load.answers) > mark + 20, 30, "load after the switch")
        assert load.instances_since(mark).isdisjoint(old)  # only the new instance now
    assert load.errors == []
    assert Counter(status for status, _ in load.answers) == {200: len(load.answers)}
    # The switch went through the Runtime API: the same HAProxy, never reloaded.
    assert haproxy_pids(agent.root) == [pid]


def test_autoscaling_reads_haproxy_in_flight_counts(agent, hello_image):
    client = agent.client()
    service = scaled_service(client, "elastic", hello_image, MaxConcurrency=2, MinSize=1, MaxSize=3)
    service_id = service["ServiceId"]
    with Load(agent, "elastic", workers=6, slow_ms=1500) as load:
        wait_for(lambda: len(live_containers(service_id)) == 3, 60, "three instances")
        mark = len(load.answers)
        wait_for(lambda: len(load.instances_since(mark)) == 3, 30, "answers from all three")
    assert load.errors == []
    assert Counter(status for status, _ in load.answers) == {200: len(load.answers)}
    # Idle again: in flight reads 0 everywhere, so it scales in, draining by the counts.
    wait_for(lambda: len(live_containers(service_id)) == 1, 60, "back to MinSize")
    assert agent.get("elastic").status_code == 200


def test_metrics_count_haproxy_requests_by_service_and_status(agent, hello_image):
    client = agent.client()
    arn = client.create_service(
        ServiceName="counted", SourceConfiguration=image_source(hello_image)
    )["Service"]["ServiceArn"]
    wait_status(client, arn, "RUNNING")
    value = agent.metric
    assert agent.get("counted").status_code == 200
    wait_for(lambda: value("slipway_requests_total", service="counted") >= 1, 20, "a count")
    agent.access_log_read()
    before = {
        "requests": value("slipway_requests_total", service="counted"),
        "2xx": value("slipway_responses_total", service="counted", status_class="2xx"),
        "4xx": value("slipway_responses_total", service="counted", status_class="4xx"),
        "latency": value("slipway_request_latency_seconds_count", service="counted"),
        "slow": value("slipway_request_latency_seconds_bucket", service="counted", le="0.25"),
    }
    handled = frontend_requests(agent)
    for _ in range(5):
        assert agent.get("counted").status_code == 200
    for _ in range(2):
        assert agent.get("counted", "/slow?ms=300").status_code == 200
    for _ in range(3):
        assert agent.get("counted", "/no-such-page").status_code == 404
    assert frontend_requests(agent) == handled + 10  # all through HAProxy, none through Caddy
    wait_for(
        lambda: (
            value("slipway_request_latency_seconds_count", service="counted")
            == before["latency"] + 10
        ),
        20,
        "the latencies of all ten",
    )
    agent.access_log_read()  # nothing more arrives: the counts are exact
    assert value("slipway_requests_total", service="counted") == before["requests"] + 10
    assert value("slipway_responses_total", service="counted", status_class="2xx") == (
        before["2xx"] + 7
    )
    assert value("slipway_responses_total", service="counted", status_class="4xx") == (
        before["4xx"] + 3
    )
    # The two slow ones are above 0.25 s, the eight others below.
    assert (
        value("slipway_request_latency_seconds_bucket", service="counted", le="0.25")
        == before["slow"] + 8
    )


def test_paused_and_unknown_hosts_answer_as_with_caddy(agent, hello_image):
    client = agent.client()
    arn = client.create_service(
        ServiceName="sleepy", SourceConfiguration=image_source(hello_image)
    )["Service"]["ServiceArn"]
    wait_status(client, arn, "RUNNING")
    assert agent.get("sleepy").status_code == 200
    client.pause_service(ServiceArn=arn)
    wait_status(client, arn, "PAUSED")
    paused = agent.get("sleepy")
    assert (paused.status_code, paused.text) == (503, "Service is paused")
    # A host no service has goes past HAProxy to Caddy, which says so.
    before = frontend_requests(agent)
    unknown = agent.get("nobody-here")
    assert (unknown.status_code, unknown.text) == (404, "No service at this host")
    assert frontend_requests(agent) == before + 1


def test_custom_domain_https_by_caddy_and_redirect_through_haproxy(
    agent, dns_server, hello_image, tmp_path
):
    client = agent.client()
    arn = client.create_service(
        ServiceName="shop",
        SourceConfiguration=image_source(
            hello_image, RuntimeEnvironmentVariables={"GREETING": "shop"}
        ),
        HealthCheckConfiguration={"Protocol": "HTTP", "Path": "/health", "Interval": 1},
    )["Service"]["ServiceArn"]
    wait_status(client, arn, "RUNNING")
    client.associate_custom_domain(ServiceArn=arn, DomainName="shop.example.test")
    dns_server.point("shop.example.test", "127.0.0.1")
    dns_server.point("www.shop.example.test", "127.0.0.1")

    def active() -> bool:
        found = client.describe_custom_domains(ServiceArn=arn)["CustomDomains"]
        assert all(d["Status"] != "CREATE_FAILED" for d in found), found
        return any(d["Status"] == "ACTIVE" for d in found)

    wait_for(active, 60, "shop.example.test ACTIVE")
    pem = httpx.get(f"{agent.caddy.admin_url}/pki/ca/local", timeout=5).json()
    ca_root = tmp_path / "root.pem"
    ca_root.write_text(pem["root_certificate"])
    assert "GREETING=shop" in curl_https(agent, ca_root, "shop.example.test")
    # Plain HTTP for the custom domain reaches HAProxy, which hands it to Caddy.
    before = frontend_requests(agent)
    redirect = httpx.get(
        f"http://127.0.0.1:{agent.http_port}/health?x=1",
        headers={"Host": "shop.example.test"},
        timeout=10,
    )
    assert redirect.status_code == 308
    assert (
        redirect.headers["location"]
        == f"https://shop.example.test:{agent.caddy.https_port}/health?x=1"
    )
    assert frontend_requests(agent) == before + 1


def test_haproxy_that_dies_is_started_again_with_its_routes(agent, hello_image):
    client = agent.client()
    arn = client.create_service(
        ServiceName="phoenix", SourceConfiguration=image_source(hello_image)
    )["Service"]["ServiceArn"]
    wait_status(client, arn, "RUNNING")
    (pid,) = haproxy_pids(agent.root)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: haproxy_pids(agent.root) not in ([], [pid]), 30, "another HAProxy")

    def answers() -> bool:
        with contextlib.suppress(httpx.HTTPError):
            return agent.get("phoenix").status_code == 200
        return False

    wait_for(answers, 30, "phoenix answering through the new HAProxy")
