"""Custom domains through boto3, a test DNS server and a real Caddy with ``tls internal``:
what a user sees is the status App Runner shows, the records to put in DNS, and HTTPS
answers with a certificate from Caddy's CA (checked with curl --cacert --resolve)."""

from __future__ import annotations

from pathlib import Path

import botocore.exceptions
import httpx
import pytest
from typer.testing import CliRunner

from slipway.cli import app
from testkit.harness import curl_https, image_source, wait_for, wait_status

pytestmark = pytest.mark.e2e

GREETING = "Hello from slipway! GREETING="


def AGENT_SETTINGS(request: pytest.FixtureRequest) -> dict:  # noqa: N802 - conftest's name
    return {
        "tls_issuer": "internal",
        "https_port": request.getfixturevalue("caddy_server").https_port,
        "dns_resolver": request.getfixturevalue("dns_server").address,
        "domain_check_interval": 0.5,
        "metrics_interval": 0.5,
    }


def image_service(client, name: str, image: str) -> str:
    created = client.create_service(
        ServiceName=name,
        SourceConfiguration=image_source(image, RuntimeEnvironmentVariables={"GREETING": name}),
        HealthCheckConfiguration={"Protocol": "HTTP", "Path": "/health", "Interval": 1},
    )
    arn = created["Service"]["ServiceArn"]
    wait_status(client, arn, "RUNNING")
    return arn


def domain(client, arn: str, name: str) -> dict | None:
    found = client.describe_custom_domains(ServiceArn=arn)["CustomDomains"]
    return next((d for d in found if d["DomainName"] == name), None)


def wait_domain(client, arn: str, name: str, status: str, timeout: float = 60) -> dict:
    def check() -> dict | None:
        got = domain(client, arn, name)
        assert got is not None, f"{name} vanished"
        assert got["Status"] != "CREATE_FAILED", got
        return got if got["Status"] == status else None

    return wait_for(check, timeout, f"{name} {status}")


@pytest.fixture(scope="module")
def ca_root(agent, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Caddy's internal root, as a user would fetch it to trust it."""
    pem = httpx.get(f"{agent.caddy.admin_url}/pki/ca/local", timeout=5).json()
    path = tmp_path_factory.mktemp("ca") / "root.pem"
    path.write_text(pem["root_certificate"])
    return path


def http_get(agent, host: str, path: str = "/") -> httpx.Response:
    return httpx.get(
        f"http://127.0.0.1:{agent.http_port}{path}", headers={"Host": host}, timeout=10
    )


def events_log(agent, service: str) -> str:
    return CliRunner().invoke(app, ["logs", service], env=agent.env).output


def test_domain_validates_and_serves_https_and_wildcard_yields_to_exact(
    agent, dns_server, hello_image, ca_root
):
    client = agent.client()
    shop = image_service(client, "shop", hello_image)
    catch = image_service(client, "catchall", hello_image)
    https_port = agent.caddy.https_port

    answer = client.associate_custom_domain(ServiceArn=shop, DomainName="shop.example.test")
    assert answer["DNSTarget"] == "shop.localhost"
    assert answer["VpcDNSTargets"] == []
    created = answer["CustomDomain"]
    assert created["Status"] == "CREATING"
    assert created["EnableWWWSubdomain"] is True  # App Runner's default
    assert created["CertificateValidationRecords"] == [
        {
            "Name": name,
            "Type": "CNAME",
            "Value": "shop.localhost",
            "Status": "PENDING_VALIDATION",
        }
        for name in ("shop.example.test", "www.shop.example.test")
    ]

    # DNS points elsewhere: pending, and the events stream says why (once).
    dns_server.point("shop.example.test", "192.0.2.10")
    wait_domain(client, shop, "shop.example.test", "PENDING_CERTIFICATE_DNS_VALIDATION")
    wait_for(
        lambda: "resolves to 192.0.2.10, which is not this host" in events_log(agent, "shop"),
        20,
        "the reason in the events stream",
    )
    assert events_log(agent, "shop").count("resolves to 192.0.2.10") == 1
    assert http_get(agent, "shop.example.test").status_code == 404  # not served yet

    # The user fixes DNS: a record for the name and one for www.
    dns_server.point("shop.example.test", "127.0.0.1")
    dns_server.point("www.shop.example.test", "127.0.0.1")
    active = wait_domain(client, shop, "shop.example.test", "ACTIVE")
    assert {r["Status"] for r in active["CertificateValidationRecords"]} == {"SUCCESS"}

    def shop_requests() -> float:
        return agent.metric("slipway_requests_total", service="shop")

    agent.access_log_read()  # what came before is counted
    counted = shop_requests()
    assert curl_https(agent, ca_root, "shop.example.test") == f"{GREETING}shop"
    assert curl_https(agent, ca_root, "www.shop.example.test") == f"{GREETING}shop"
    redirect = http_get(agent, "shop.example.test", "/health?x=1")
    assert redirect.status_code == 308
    assert redirect.headers["location"] == f"https://shop.example.test:{https_port}/health?x=1"
    assert agent.get("shop").text.strip() == f"{GREETING}shop"  # default URL unchanged
    # All four count for the service in /metrics, whichever name and server they came by.
    wait_for(lambda: shop_requests() == counted + 4, 20, "the count")
    agent.access_log_read()  # nothing more arrives: the count is exact
    assert shop_requests() == counted + 4

    # A wildcard on another service: any other host under it goes there; shop stays.
    dns_server.point("*.example.test", "127.0.0.1")
    wild = client.associate_custom_domain(ServiceArn=catch, DomainName="*.example.test")
    assert wild["CustomDomain"]["EnableWWWSubdomain"] is False
    wait_domain(client, catch, "*.example.test", "ACTIVE")
    assert curl_https(agent, ca_root, "anything.example.test") == f"{GREETING}catchall"
    assert curl_https(agent, ca_root, "shop.example.test") == f"{GREETING}shop"
    assert http_get(agent, "other.example.test").status_code == 308
    # Caddy's on-demand TLS asks the agent: only names under an active domain get one.
    ask = f"{agent.endpoint}/slipway/v1/domains/ask"
    assert httpx.get(ask, params={"domain": "new.example.test"}).status_code == 200
    assert httpx.get(ask, params={"domain": "a.b.example.test"}).status_code == 403
    with pytest.raises(AssertionError, match="SSL|TLS|alert"):
        curl_https(agent, ca_root, "a.b.example.test")

    # Paused: the custom domain answers like the default host does.
    client.pause_service(ServiceArn=shop)
    wait_status(client, shop, "PAUSED")
    with pytest.raises(AssertionError, match="503"):
        curl_https(agent, ca_root, "shop.example.test")
    client.resume_service(ServiceArn=shop)
    wait_status(client, shop, "RUNNING")

    # Disassociated: DELETING, then gone; the wildcard now covers the name.
    gone = client.disassociate_custom_domain(ServiceArn=shop, DomainName="shop.example.test")
    assert gone["CustomDomain"]["Status"] == "DELETING"
    wait_for(lambda: domain(client, shop, "shop.example.test") is None, 20, "shop gone")
    wait_for(
        lambda: curl_https(agent, ca_root, "shop.example.test") == f"{GREETING}catchall",
        10,
        "the wildcard to take over",
    )


def test_bad_input_gets_app_runner_errors_and_changes_nothing(agent, dns_server, hello_image):
    client = agent.client()
    arn = image_service(client, "picky", hello_image)
    other = image_service(client, "other", hello_image)
    client.associate_custom_domain(ServiceArn=other, DomainName="taken.example.test")

    def error(call, **params) -> tuple[str, str]:
        with pytest.raises(botocore.exceptions.ClientError) as info:
            call(**params)
        return info.value.response["Error"]["Code"], info.value.response["Error"]["Message"]

    associate = client.associate_custom_domain
    for bad in ("a.*.example.test", "*example.test", "-a.example.test", "a..example.test",
                "xn--pple-43d.test", "ab--c.example.test", "picky.localhost", "com"):  # fmt: skip
        code, _ = error(associate, ServiceArn=arn, DomainName=bad)
        assert code == "InvalidRequestException", bad
    code, message = error(associate, ServiceArn=arn, DomainName="TAKEN.example.test.")
    assert code == "InvalidRequestException"
    assert "taken.example.test is already associated with service other" in message
    code, message = error(associate, ServiceArn=arn, DomainName="www.taken.example.test")
    assert code == "InvalidRequestException" and "www.taken.example.test" in message
    code, _ = error(associate, ServiceArn=arn, DomainName="bücher.example.test")
    assert code == "InvalidRequestException"  # the model's pattern admits ASCII only
    code, _ = error(associate, ServiceArn=arn, DomainName="*.example.org", EnableWWWSubdomain=True)
    assert code == "InvalidRequestException"

    for i in range(5):
        associate(ServiceArn=arn, DomainName=f"d{i}.example.org", EnableWWWSubdomain=False)
    code, message = error(associate, ServiceArn=arn, DomainName="d5.example.org")
    assert code == "InvalidRequestException" and "5 custom domains" in message
    page = client.describe_custom_domains(ServiceArn=arn, MaxResults=3)
    assert len(page["CustomDomains"]) == 3
    rest = client.describe_custom_domains(ServiceArn=arn, NextToken=page["NextToken"])
    assert len(rest["CustomDomains"]) == 2 and "NextToken" not in rest

    code, _ = error(
        client.disassociate_custom_domain, ServiceArn=arn, DomainName="never.example.org"
    )
    assert code == "ResourceNotFoundException"

    client.pause_service(ServiceArn=other)
    wait_status(client, other, "PAUSED")
    code, message = error(associate, ServiceArn=other, DomainName="late.example.test")
    assert code == "InvalidStateException" and "PAUSED" in message
    assert [d["DomainName"] for d in client.describe_custom_domains(ServiceArn=other)[
        "CustomDomains"
    ]] == ["taken.example.test"]  # fmt: skip
