"""``instance_user`` forces a user on instances of image services, which otherwise keep
the image's own (the example image's is root): the app then runs unprivileged and still
serves through Caddy."""

from __future__ import annotations

import pytest

from testkit.harness import image_source, live_containers, wait_status

pytestmark = pytest.mark.e2e

AGENT_SETTINGS = {"instance_user": "10001:10001"}


def test_the_setting_forces_the_user_on_an_image_service(agent, hello_image):
    client = agent.client()
    service = client.create_service(
        ServiceName="forced", SourceConfiguration=image_source(hello_image)
    )["Service"]
    wait_status(client, service["ServiceArn"], "RUNNING")
    (container,) = live_containers(service["ServiceId"])
    assert container.image.attrs["Config"]["User"] == ""  # the image's own user: root
    assert container.attrs["Config"]["User"] == "10001:10001"
    assert container.exec_run(["id", "-u"]).output.decode().strip() == "10001"
    status = container.exec_run(["cat", "/proc/1/status"]).output.decode()
    assert "Uid:\t10001\t10001\t10001\t10001" in status
    assert agent.get("forced").text.strip().startswith("Hello from slipway!")
