"""What a user checks of a private service, with either data plane: the public listener
answers 404 for it as for an unknown host; the private listener serves it at the
DomainName its VPC ingress connection reports, and only while that connection exists."""

from __future__ import annotations

from typing import Any

import httpx

from testkit.harness import AgentProcess, image_source, wait_for, wait_status

UNKNOWN_HOST = "No service at this host"


def get(listen: str, host: str) -> httpx.Response:
    """A request to ``listen`` (address:port of a listener of the test's agent) for ``host``."""
    return httpx.get(f"http://{listen}/", headers={"Host": host}, timeout=10)


def check_private_service(agent: AgentProcess, private_listen: str, image: str, name: str) -> None:
    client: Any = agent.client()
    public = client.create_service(
        ServiceName=f"{name}-pub", SourceConfiguration=image_source(image)
    )
    private = client.create_service(
        ServiceName=name,
        SourceConfiguration=image_source(image),
        NetworkConfiguration={"IngressConfiguration": {"IsPubliclyAccessible": False}},
    )
    arn = private["Service"]["ServiceArn"]
    wait_status(client, public["Service"]["ServiceArn"], "RUNNING")
    described = wait_status(client, arn, "RUNNING")
    assert described["NetworkConfiguration"]["IngressConfiguration"] == {
        "IsPubliclyAccessible": False
    }
    public_listen = f"127.0.0.1:{agent.http_port}"
    host = f"{name}.localhost"
    # The public one is served on the public listener only.
    assert agent.get(f"{name}-pub").text.startswith("Hello from slipway!")
    assert get(private_listen, f"{name}-pub.localhost").status_code == 404
    # The private one: nowhere yet, as an unknown host (no ingress connection).
    for listen in (public_listen, private_listen):
        answer = get(listen, host)
        assert (answer.status_code, answer.text) == (404, UNKNOWN_HOST)

    made = client.create_vpc_ingress_connection(
        ServiceArn=arn,
        VpcIngressConnectionName=f"{name}-conn",
        IngressVpcConfiguration={"VpcId": "vpc-local", "VpcEndpointId": "vpce-local"},
    )["VpcIngressConnection"]
    assert (made["Status"], made["DomainName"]) == ("AVAILABLE", host)
    wait_for(
        lambda: get(private_listen, made["DomainName"]).status_code == 200,
        30,
        "the private listener to serve the private service",
    )
    assert get(private_listen, made["DomainName"]).text.startswith("Hello from slipway!")
    answer = get(public_listen, host)
    assert (answer.status_code, answer.text) == (404, UNKNOWN_HOST)

    conn_arn = made["VpcIngressConnectionArn"]
    listed = client.list_vpc_ingress_connections(Filter={"ServiceArn": arn})
    assert listed["VpcIngressConnectionSummaryList"] == [
        {"VpcIngressConnectionArn": conn_arn, "ServiceArn": arn}
    ]
    gone = client.delete_vpc_ingress_connection(VpcIngressConnectionArn=conn_arn)
    assert gone["VpcIngressConnection"]["Status"] == "DELETED"
    wait_for(
        lambda: get(private_listen, host).status_code == 404,
        30,
        "the private listener to stop serving the service once its connection is deleted",
    )
