"""Network isolation, attacked for real: an instance cannot reach another service's
instance (by address or name) nor the host's own ports, and a build cannot reach the
cloud metadata address, the host or a service's instance, while Caddy still serves
both services and the build still installs from PyPI.

Every refused attempt goes to a server of the test's own that is shown to answer from
the host: a listener on all addresses (an agent bound beyond loopback), a metadata
server on 169.254.169.254 (on an interface made for it), an instance's app port. The
fence refuses with icmp-admin-prohibited, so a refused attempt fails at once with
EHOSTUNREACH, never ECONNREFUSED (nothing listening) or a timeout.
"""

from __future__ import annotations

import contextlib
import ipaddress
import subprocess
import uuid
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import docker
import docker.errors
import httpx
import pytest
from typer.testing import CliRunner

from slipway.backends.docker_networks import BRIDGE_OPTION, BUILD_NETWORK, network_name
from slipway.backends.fence import FORWARD_CHAIN
from slipway.cli import app
from testkit.gitserver import GitServer
from testkit.harness import (
    code_source,
    free_port,
    image_source,
    live_containers,
    operations,
    scaled_service,
    wait_for,
    wait_status,
)
from testkit.hostile import (
    FENCED,
    METADATA,
    PROBE,
    Listener,
    container_network,
    host_answers,
    metadata_server,
    parse_probes,
    probe_from,
)

pytestmark = pytest.mark.e2e
AGENT_SETTINGS = {"build_timeout": 300}
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def host_listener() -> Iterator[Listener]:
    with contextlib.closing(Listener()) as listener:
        yield listener


@pytest.fixture(scope="module")
def metadata() -> Iterator[ThreadingHTTPServer]:
    with metadata_server() as server:
        yield server


@pytest.fixture(scope="module")
def git(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitServer]:
    with GitServer(tmp_path_factory.mktemp("git")) as server:
        yield server


@pytest.fixture
def published(docker_client: docker.DockerClient, busybox_image: str) -> Iterator[int]:
    """A container outside slipway publishing its port on all of the host's addresses
    (a registry or database an operator runs in Docker); the host port."""
    port = free_port()
    box = docker_client.containers.run(
        busybox_image,
        ["httpd", "-f", "-p", "8080", "-h", "/www"],
        ports={"8080/tcp": ("0.0.0.0", port)},
        detach=True,
        name=f"slipway-test-published-{uuid.uuid4().hex[:8]}",
    )
    try:
        yield port
    finally:
        box.remove(force=True)


def test_instances_reach_neither_other_services_nor_the_host(
    agent, hello_image, host_listener, metadata, published
):
    client = agent.client()
    a = client.create_service(ServiceName="iso-a", SourceConfiguration=image_source(hello_image))
    b = client.create_service(ServiceName="iso-b", SourceConfiguration=image_source(hello_image))
    for created in (a, b):
        wait_status(client, created["Service"]["ServiceArn"], "RUNNING")
    a_id, b_id = a["Service"]["ServiceId"], b["Service"]["ServiceId"]
    (a_box,) = live_containers(a_id)
    (b_box,) = live_containers(b_id)
    a_net, _, a_gateway = container_network(a_box)
    b_net, b_address, _ = container_network(b_box)
    assert (a_net, b_net) == (network_name(a_id), network_name(b_id))

    # Each target answers the host: B's app at its address, the listener everywhere,
    # the metadata server over HTTP as a cloud's does.
    md_port = metadata.server_address[1]
    assert host_answers(b_address, 8080)
    assert host_listener.answers(a_gateway)
    wait_for(lambda: httpx.get(f"http://{a_gateway}:{published}/").status_code == 200, 30)
    assert httpx.get(f"http://{METADATA}:{md_port}/latest/meta-data/").text == "ami-id\n"
    seen = (len(metadata.RequestHandlerClass.peers), len(host_listener.peers))

    probes = probe_from(
        a_box,
        ("neighbour", b_address, 8080),
        ("host", a_gateway, host_listener.port),
        ("metadata", METADATA, md_port),
        ("published", a_gateway, published),  # Docker's DNAT would take it there
    )
    assert probes == {
        "neighbour": FENCED,
        "host": FENCED,
        "metadata": FENCED,
        "published": FENCED,
    }
    # Nothing of A's arrived. (Caddy's http_port is left out: agents side by side
    # each open their own, and the last to install the fence wins.)
    assert (len(metadata.RequestHandlerClass.peers), len(host_listener.peers)) == seen
    # Nor by name: Docker's DNS answers only inside B's network.
    lookup = a_box.exec_run(
        ["python3", "-c", f"import socket; socket.gethostbyname({b_box.name!r})"]
    )
    assert lookup.exit_code != 0 and b"gaierror" in lookup.output

    # Caddy still reaches both, through their published loopback ports.
    for name in ("iso-a", "iso-b"):
        assert agent.get(name).text.strip().startswith("Hello from slipway!")

    # A deleted service's network goes with it.
    client.delete_service(ServiceArn=b["Service"]["ServiceArn"])
    wait_status(client, b["Service"]["ServiceArn"], "DELETED")
    docker_client = docker.from_env()
    with pytest.raises(docker.errors.NotFound):
        docker_client.networks.get(network_name(b_id))
    docker_client.networks.get(network_name(a_id))  # A's stays


def test_instances_of_one_service_still_reach_each_other(agent, hello_image):
    service = scaled_service(agent.client(), "iso-pair", hello_image, MinSize=2, MaxSize=2)
    first, second = live_containers(service["ServiceId"])
    _, address, _ = container_network(second)
    assert probe_from(first, ("sibling", address, 8080)) == {"sibling": "open"}
    lookup = first.exec_run(
        ["python3", "-c", f"import socket; socket.gethostbyname({second.name!r})"]
    )
    assert lookup.exit_code == 0, lookup.output


def build_gateway() -> str:
    config = docker.from_env().networks.get(BUILD_NETWORK).attrs["IPAM"]["Config"][0]
    gateway = config.get("Gateway")
    return gateway or str(next(ipaddress.IPv4Network(config["Subnet"]).hosts()))


def test_a_build_reaches_pypi_but_not_metadata_the_host_or_instances(
    agent, hello_image, git, metadata, host_listener
):
    client = agent.client()
    target = client.create_service(
        ServiceName="iso-target", SourceConfiguration=image_source(hello_image)
    )
    wait_status(client, target["Service"]["ServiceArn"], "RUNNING")
    (target_box,) = live_containers(target["Service"]["ServiceId"])
    _, target_address, _ = container_network(target_box)
    md_port = metadata.server_address[1]
    gateway = build_gateway()

    # Every target answers the host (the metadata server over HTTP, as a cloud's does).
    assert httpx.get(f"http://{METADATA}:{md_port}/latest/meta-data/").text == "ami-id\n"
    assert host_listener.answers(gateway)
    assert host_answers(target_address, 8080)
    seen = (len(metadata.RequestHandlerClass.peers), len(host_listener.peers))

    targets = [
        ("metadata", METADATA, md_port),
        ("host", gateway, host_listener.port),
        ("instance", target_address, 8080),
    ]
    files = {
        str(p.relative_to(EXAMPLES / "python-hello")): p.read_text()
        for p in (EXAMPLES / "python-hello").rglob("*")
        if p.is_file()
    }
    files["probe.py"] = PROBE
    # A requirement of its own, so pip runs here, not from another build's cached layer.
    files["requirements.txt"] += f"# {uuid.uuid4().hex}\n"
    files["apprunner.yaml"] = files["apprunner.yaml"].replace(
        "      - pip install -r requirements.txt\n",
        "      - pip install -r requirements.txt\n"
        f"      - python3 probe.py {' '.join(f'{n},{h},{p}' for n, h, p in targets)}\n",
    )
    git.create_repo("prober", files)
    created = client.create_service(
        ServiceName="iso-build", SourceConfiguration=code_source(git.url("prober"))
    )
    wait_status(client, created["Service"]["ServiceArn"], "RUNNING", timeout=300)

    result = CliRunner().invoke(
        app, ["logs", "iso-build", "--deployment", created["OperationId"]], env=agent.env
    )
    assert result.exit_code == 0, result.output
    log = result.output
    assert "Successfully installed humanize" in log  # PyPI, straight from the build network
    assert parse_probes(log) == {"metadata": FENCED, "host": FENCED, "instance": FENCED}
    assert (len(metadata.RequestHandlerClass.peers), len(host_listener.peers)) == seen
    wait_for(lambda: agent.get("iso-build").status_code == 200, 30, "iso-build to answer")


def test_a_restarted_agent_adopts_the_network_and_keeps_the_fence(agent, hello_image, push_variant):
    client = agent.client()
    created = client.create_service(
        ServiceName="iso-kept", SourceConfiguration=image_source(hello_image)
    )["Service"]
    arn, service_id = created["ServiceArn"], created["ServiceId"]
    wait_status(client, arn, "RUNNING")
    network = docker.from_env().networks.get(network_name(service_id))

    agent.kill()
    agent.start()
    client = agent.client()
    push_variant(hello_image, APP_VERSION="after-restart")
    op_id = client.start_deployment(ServiceArn=arn)["OperationId"]
    wait_for(lambda: operations(client, arn)[0]["Status"] == "SUCCEEDED", 90, "the new deployment")
    assert operations(client, arn)[0]["Id"] == op_id
    (box,) = live_containers(service_id)
    assert container_network(box)[0] == network.name
    assert docker.from_env().networks.get(network.name).id == network.id  # the same one
    fence = subprocess.run(["iptables", "-S", FORWARD_CHAIN], capture_output=True, text=True)
    bridge = network.attrs["Options"][BRIDGE_OPTION]
    assert f"-A {FORWARD_CHAIN} -i {bridge} -o {bridge} -j RETURN" in fence.stdout
    assert agent.get("iso-kept").text.strip().startswith("Hello from slipway!")
