"""A hostile instance harms nothing but itself: a fork bomb stops at the pids limit
while the app and its neighbour keep answering, and the dropped capabilities and
no-new-privileges hold inside the container."""

from __future__ import annotations

import pytest

from testkit.harness import image_source, live_containers, wait_for, wait_status

pytestmark = pytest.mark.e2e

PIDS = 48
AGENT_SETTINGS = {"instance_pids_limit": str(PIDS)}

# The app in front; behind it, once it listens, processes without end.
FORK_BOMB = (
    "( sleep 2; while :; do sleep 600 & sleep 0.01; done ) >/dev/null 2>&1 & "
    "exec python3 /app/app.py"
)


def test_a_fork_bomb_stops_at_the_pids_limit(agent, hello_image):
    client = agent.client()
    neighbour = client.create_service(
        ServiceName="neighbour", SourceConfiguration=image_source(hello_image)
    )["Service"]
    bomb = client.create_service(
        ServiceName="bomb", SourceConfiguration=image_source(hello_image, StartCommand=FORK_BOMB)
    )["Service"]
    wait_status(client, neighbour["ServiceArn"], "RUNNING")
    wait_status(client, bomb["ServiceArn"], "RUNNING")
    (container,) = live_containers(bomb["ServiceId"])

    def pids() -> int:
        return container.stats(stream=False)["pids_stats"]["current"]

    # The bomb reaches the limit (the signal that it ran), and goes no further.
    wait_for(lambda: pids() >= PIDS - 2, 60, f"the fork bomb to reach {PIDS} processes")
    assert max(pids() for _ in range(3)) <= PIDS
    assert len(container.top()["Processes"]) <= PIDS
    assert agent.get("neighbour").text.strip().startswith("Hello from slipway!")


def test_capabilities_are_dropped_and_privileges_cannot_grow(agent, hello_image):
    client = agent.client()
    service = client.create_service(
        ServiceName="boxed", SourceConfiguration=image_source(hello_image)
    )["Service"]
    wait_status(client, service["ServiceArn"], "RUNNING")
    (container,) = live_containers(service["ServiceId"])

    # Root in the container, but without CAP_CHOWN or CAP_MKNOD: both attacks fail.
    chown = container.exec_run(["chown", "12345", "/app/app.py"])
    assert chown.exit_code != 0, chown.output
    mknod = container.exec_run(["mknod", "/tmp/disk", "b", "8", "0"])
    assert mknod.exit_code != 0, mknod.output
    status = container.exec_run(["cat", "/proc/1/status"]).output.decode()
    assert "NoNewPrivs:\t1" in status
    assert "CapEff:\t0000000000000400" in status  # CAP_NET_BIND_SERVICE alone
