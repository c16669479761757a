"""VPC connectors and private services through the real parts (Caddy data plane):
a service reaches a database-like container on a user-defined Docker network only when
its VPC connector names that network, and the host fence still holds for everything
else its instance tries; a private service is served on the private listener at its
VPC ingress connection's DomainName and answers 404 on the public one.

The "database" is the example app (``GET /`` answers with its GREETING) in a container
of the test's own on a network of the test's own, named to sort before slipway's
networks: Docker then routes the instance's traffic out through it, which is what the
fence's VPC chains must hold.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import docker
import docker.errors
import pytest
from botocore.exceptions import ClientError

from testkit.harness import aws_json, free_port, image_source, live_containers, wait_status
from testkit.hostile import FENCED, Listener, probe_from
from testkit.vpc import check_private_service

pytestmark = pytest.mark.e2e
PRIVATE_LISTEN = f"127.0.0.1:{free_port()}"
AGENT_SETTINGS = {"private_listen": PRIVATE_LISTEN}

FETCH = """
import socket, sys, urllib.request
try:
    print(urllib.request.urlopen(f"http://{sys.argv[1]}:8080/", timeout=10).read().decode())
except OSError as exc:
    print("FAILED", type(exc).__name__, exc)
"""


@pytest.fixture(scope="module")
def database(docker_client: docker.DockerClient, hello_local: str) -> Iterator[tuple[str, str]]:
    """(network, container name) of a database-like server on a network of its own."""
    suffix = uuid.uuid4().hex[:8]
    network = docker_client.networks.create(f"vpc-db-{suffix}", driver="bridge")
    box = docker_client.containers.run(
        hello_local,
        name=f"vpc-db-{suffix}",
        network=network.name,
        environment={"GREETING": "from-the-database", "PORT": "8080"},
        detach=True,
    )
    try:
        yield network.name, box.name
    finally:
        box.remove(force=True)
        network.reload()
        for container_id in network.attrs.get("Containers") or {}:  # an instance left
            with contextlib.suppress(docker.errors.NotFound):
                network.disconnect(container_id, force=True)
        network.remove()


@pytest.fixture(scope="module")
def host_listener() -> Iterator[Listener]:
    with contextlib.closing(Listener()) as listener:
        yield listener


def fetch(container, host: str) -> str:
    return container.exec_run(["python3", "-c", FETCH, host]).output.decode()


def error_of(call) -> tuple[str, str]:
    with pytest.raises(ClientError) as caught:
        call()
    error = caught.value.response["Error"]
    return error["Code"], error["Message"]


def test_a_service_reaches_a_database_only_through_its_vpc_connector(
    agent, hello_image, database, host_listener, docker_client
):
    network, db_name = database
    client = agent.client()
    code, message = error_of(
        lambda: client.create_vpc_connector(VpcConnectorName="db-bad", Subnets=["no-such-net"])
    )
    assert code == "InvalidRequestException" and "'no-such-net' does not exist" in message
    assert client.list_vpc_connectors()["VpcConnectors"] == []

    connector = client.create_vpc_connector(
        VpcConnectorName="db-access", Subnets=[network], SecurityGroups=["sg-0123abcd"]
    )["VpcConnector"]
    assert (connector["Status"], connector["Subnets"]) == ("ACTIVE", [network])
    egress = {"EgressType": "VPC", "VpcConnectorArn": connector["VpcConnectorArn"]}
    with_vpc = client.create_service(
        ServiceName="vpc-with",
        SourceConfiguration=image_source(hello_image),
        NetworkConfiguration={"EgressConfiguration": egress},
    )["Service"]
    without = client.create_service(
        ServiceName="vpc-without", SourceConfiguration=image_source(hello_image)
    )["Service"]
    described = wait_status(client, with_vpc["ServiceArn"], "RUNNING")
    assert described["NetworkConfiguration"]["EgressConfiguration"] == egress
    wait_status(client, without["ServiceArn"], "RUNNING")
    (inside,) = live_containers(with_vpc["ServiceId"])
    (outside,) = live_containers(without["ServiceId"])

    # Through the connector, by the database's name; without it, the name is unknown.
    assert "GREETING=from-the-database" in fetch(inside, db_name)
    refused = fetch(outside, db_name)
    assert "FAILED" in refused and "from-the-database" not in refused
    # Both still serve through Caddy.
    for name in ("vpc-with", "vpc-without"):
        assert agent.get(name).text.startswith("Hello from slipway!")

    # The fence holds for all else the instance tries, even out through the joined
    # network: the host (at the joined network's gateway and its own), the neighbour.
    inside.reload()
    outside.reload()
    nets = inside.attrs["NetworkSettings"]["Networks"]
    joined_gateway = nets[network]["Gateway"]
    own = next(v for k, v in nets.items() if k != network)
    (neighbour,) = outside.attrs["NetworkSettings"]["Networks"].values()
    db = docker_client.containers.get(db_name)
    db_address = db.attrs["NetworkSettings"]["Networks"][network]["IPAddress"]
    assert host_listener.answers(joined_gateway)
    probes = probe_from(
        inside,
        ("host-joined", joined_gateway, host_listener.port),
        ("host-own", own["Gateway"], host_listener.port),
        ("neighbour", neighbour["IPAddress"], 8080),
        ("database", db_address, 8080),
    )
    assert probes == {
        "host-joined": FENCED,
        "host-own": FENCED,
        "neighbour": FENCED,
        "database": "open",
    }
    # The network's other containers are not slipway's to fence.
    assert probe_from(db, ("host", joined_gateway, host_listener.port)) == {"host": "open"}

    # A connector in use stays; once no service uses it, it goes INACTIVE.
    arn = connector["VpcConnectorArn"]
    code, message = error_of(lambda: client.delete_vpc_connector(VpcConnectorArn=arn))
    assert code == "InvalidRequestException" and "vpc-with" in message
    assert client.describe_vpc_connector(VpcConnectorArn=arn)["VpcConnector"]["Status"] == (
        "ACTIVE"
    )
    client.delete_service(ServiceArn=with_vpc["ServiceArn"])
    wait_status(client, with_vpc["ServiceArn"], "DELETED")
    deleted = client.delete_vpc_connector(VpcConnectorArn=arn)["VpcConnector"]
    assert deleted["Status"] == "INACTIVE"


def test_a_private_service_is_served_on_the_private_listener_only(agent, hello_image):
    check_private_service(agent, PRIVATE_LISTEN, hello_image, "vpc-private")


def test_a_malformed_egress_is_refused_and_nothing_is_stored(agent, hello_image):
    # (A private service on a host without private_listen: tests/unit/test_vpc_rules.py.)
    client = agent.client()
    before = client.list_services()["ServiceSummaryList"]
    code, message = error_of(
        lambda: client.create_service(
            ServiceName="vpc-bad",
            SourceConfiguration=image_source(hello_image),
            NetworkConfiguration={"EgressConfiguration": {"EgressType": "VPC"}},
        )
    )
    assert code == "InvalidRequestException" and "VpcConnectorArn" in message
    assert client.list_services()["ServiceSummaryList"] == before


def test_the_aws_cli_creates_describes_and_deletes_both(agent, hello_image, database):
    def cli(*args: str) -> dict:
        return aws_json(agent, *args)

    network, _ = database
    made = cli("create-vpc-connector", "--vpc-connector-name", "cli-conn", "--subnets", network)
    arn = made["VpcConnector"]["VpcConnectorArn"]
    assert cli("describe-vpc-connector", "--vpc-connector-arn", arn) == made
    assert cli("delete-vpc-connector", "--vpc-connector-arn", arn)["VpcConnector"]["Status"] == (
        "INACTIVE"
    )
    service = agent.client().create_service(
        ServiceName="vpc-cli",
        SourceConfiguration=image_source(hello_image),
        NetworkConfiguration={"IngressConfiguration": {"IsPubliclyAccessible": False}},
    )["Service"]
    conn = cli(
        "create-vpc-ingress-connection", "--service-arn", service["ServiceArn"],
        "--vpc-ingress-connection-name", "cli-ingress",
        "--ingress-vpc-configuration", "VpcId=vpc-1,VpcEndpointId=vpce-1",
    )["VpcIngressConnection"]  # fmt: skip
    assert conn["DomainName"] == "vpc-cli.localhost"
    conn_arn = conn["VpcIngressConnectionArn"]
    described = cli("describe-vpc-ingress-connection", "--vpc-ingress-connection-arn", conn_arn)
    assert described["VpcIngressConnection"] == conn
    gone = cli("delete-vpc-ingress-connection", "--vpc-ingress-connection-arn", conn_arn)
    assert gone["VpcIngressConnection"]["Status"] == "DELETED"
