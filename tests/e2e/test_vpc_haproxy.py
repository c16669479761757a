"""A private service with the HAProxy data plane (``data_plane: haproxy``): HAProxy's
map leaves its host out, so on http_port it falls to Caddy and gets the 404 of an
unknown host; Caddy serves it on the private listener as with the Caddy data plane."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit.harness import free_port, stop_haproxy
from testkit.vpc import check_private_service

pytestmark = pytest.mark.e2e
PRIVATE_LISTEN = f"127.0.0.1:{free_port()}"
AGENT_SETTINGS = {"data_plane": "haproxy", "haproxy_backends": 4, "private_listen": PRIVATE_LISTEN}


@pytest.fixture(scope="module")
def reap_haproxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Requested before ``agent``, so this ends after it: then the HAProxy the agent
    started (it outlives the agent on purpose) is stopped."""
    yield
    stop_haproxy(tmp_path_factory.getbasetemp())


def test_a_private_service_is_left_out_of_haproxy_and_served_privately(
    reap_haproxy, agent, hello_image
):
    check_private_service(agent, PRIVATE_LISTEN, hello_image, "vpc-hap")
    # HAProxy routes the public one itself; the private one is not in its map.
    hosts_map = Path(agent.env["SLIPWAY_DATA_DIR"]) / "haproxy" / "hosts.map"
    hosts = [line.split()[0] for line in hosts_map.read_text().splitlines()]
    assert hosts == ["vpc-hap-pub.localhost"]
