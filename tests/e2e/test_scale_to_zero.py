"""Scale to zero through the real parts (HAProxy, the default data plane): a service
tagged slipway:idle-timeout goes idle, the first request wakes it and gets the app's
answer, and a burst of 50 requests on an idle service are all answered."""

from __future__ import annotations

import contextlib
import json
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from test_observe import Receiver

from testkit.harness import free_port, image_source, live_containers, wait_for, wait_status

pytestmark = pytest.mark.e2e
AGENT_SETTINGS = {
    "metrics_interval": 0.5,
    "metrics_stats_interval": 1,  # ActiveInstances is set with the docker stats
    "scale_interval": 0.5,
    "outbound_allow": "127.0.0.1",  # the notification target below
}
IDLE_TIMEOUT = "3s"


@contextlib.contextmanager
def kept_awake(agent, name: str) -> Iterator[None]:
    """A request every half second, so the service stays awake while it is looked at."""
    done = threading.Event()

    def ping() -> None:
        while not done.wait(0.5):
            with contextlib.suppress(httpx.HTTPError):
                get(agent, name)

    pinger = threading.Thread(target=ping)
    pinger.start()
    try:
        yield
    finally:
        done.set()
        pinger.join()


def idle_service(agent, name: str, image: str) -> dict:
    """The example app as an image service that goes idle after IDLE_TIMEOUT."""
    client = agent.client()
    arn = client.create_service(
        ServiceName=name,
        SourceConfiguration=image_source(image),
        InstanceConfiguration={"Cpu": "256", "Memory": "512"},
        HealthCheckConfiguration={"Protocol": "HTTP", "Path": "/health", "Interval": 1},
        Tags=[{"Key": "slipway:idle-timeout", "Value": IDLE_TIMEOUT}],
    )["Service"]["ServiceArn"]
    return wait_status(client, arn, "RUNNING")


def events(agent, name: str) -> str:
    return agent.cli("events", name).stdout


def wait_idle(agent, name: str, service_id: str, times: int = 1) -> None:
    """Until the service has gone idle ``times`` times, by its events and its instances."""
    wait_for(
        lambda: events(agent, name).count("Service went idle") >= times,
        60,
        f"{name} to go idle",
    )
    wait_for(lambda: not live_containers(service_id), 30, f"{name}'s instances to stop")


def get(agent, name: str, client: httpx.Client | None = None) -> httpx.Response:
    return (client or httpx).get(
        f"http://127.0.0.1:{agent.http_port}/",
        headers={"Host": f"{name}.localhost:{agent.http_port}"},
        timeout=60,
    )


def scaling_messages(receiver: Receiver, service: str) -> list[str]:
    details = [json.loads(body)["detail"] for _, body in receiver.received]
    return [d["message"] for d in details if d["serviceName"] == service]


def test_an_idle_service_wakes_on_its_first_request(agent, hello_image, registry, tmp_path):
    receiver = Receiver(free_port())
    receiver.start()
    pattern = tmp_path / "pattern.json"
    pattern.write_text(json.dumps({"detail-type": ["AppRunner Service Scaling Change"]}))
    agent.cli("notify", "add", f"http://127.0.0.1:{receiver.port}/hook", "--pattern", str(pattern))
    service = idle_service(agent, "dozy", hello_image)
    client = agent.client()
    assert get(agent, "dozy").text == "Hello from slipway!\n"

    wait_idle(agent, "dozy", service["ServiceId"])
    wait_for(
        lambda: agent.metric("slipway_active_instances", service="dozy") == 0,
        20,
        "ActiveInstances 0",
    )
    described = client.describe_service(ServiceArn=service["ServiceArn"])["Service"]
    assert described["Status"] == "RUNNING"  # App Runner has no idle status
    assert "idle since" in agent.cli("services", "describe", "dozy").stdout

    def pulls() -> list[str]:  # a pull GETs a manifest; the image poll only HEADs them
        return [
            r
            for r in registry.requests()
            if r.startswith("GET ") and ("/manifests/" in r or "/blobs/" in r)
        ]

    before = pulls()
    answer = get(agent, "dozy")  # held while an instance starts, then served
    assert answer.status_code == 200
    assert answer.text == "Hello from slipway!\n"
    assert len(live_containers(service["ServiceId"])) == 1
    assert pulls() == before  # the image was on the host: no pull
    with kept_awake(agent, "dozy"):  # the checks below take longer than IDLE_TIMEOUT
        check_awake(agent, service, receiver)


def check_awake(agent, service: dict, receiver: Receiver) -> None:
    """What a woken service shows: its events and notifications, not idle, one instance."""
    wait_for(lambda: "Service woke" in events(agent, "dozy"), 20, "the woke event")
    wait_for(
        lambda: (
            [m.split(":")[0] for m in scaling_messages(receiver, "dozy")]
            == ["Service went idle", "Service woke"]
        ),
        30,
        "the went idle and woke notifications",
    )
    receiver.stop()
    assert "idle since" not in agent.cli("services", "describe", "dozy").stdout
    wait_for(
        lambda: agent.metric("slipway_active_instances", service="dozy") == 1,
        20,
        "ActiveInstances 1",
    )
    # Awake, it is served by its instance, not the waker.
    assert get(agent, "dozy").headers["X-Instance"]


def test_a_burst_of_50_on_an_idle_service_is_all_answered(agent, hello_image):
    service = idle_service(agent, "bursty", hello_image)
    wait_idle(agent, "bursty", service["ServiceId"])

    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(lambda _: get(agent, "bursty"), range(50)))
    assert Counter(a.status_code for a in answers) == {200: 50}
    assert {a.text for a in answers} == {"Hello from slipway!\n"}
    assert len(live_containers(service["ServiceId"])) == 1  # one wake, not fifty
    assert events(agent, "bursty").count("Service woke") == 1


def test_a_malformed_idle_timeout_is_refused_and_nothing_is_stored(agent, hello_image):
    client = agent.client()
    with pytest.raises(client.exceptions.InvalidRequestException) as refused:
        client.create_service(
            ServiceName="sleepless",
            SourceConfiguration=image_source(hello_image),
            Tags=[{"Key": "slipway:idle-timeout", "Value": "soon"}],
        )
    message = refused.value.response["Error"]["Message"]
    assert "slipway:idle-timeout 'soon'" in message and "10m" in message
    names = [s["ServiceName"] for s in client.list_services()["ServiceSummaryList"]]
    assert "sleepless" not in names

    cli = agent.cli(
        "services", "create", "sleepless", "--image", hello_image, "--scale-to-zero", "-1m",
        ok=False,
    )  # fmt: skip
    assert "slipway:idle-timeout '-1m'" in cli.stdout + cli.stderr


def test_an_idle_service_stays_idle_across_an_agent_restart(agent, hello_image):
    service = idle_service(agent, "sleeper", hello_image)
    wait_idle(agent, "sleeper", service["ServiceId"])
    agent.kill()
    agent.start()

    def reconciled_twice() -> bool:
        jobs = httpx.get(f"{agent.endpoint}/healthz", timeout=5).json()["jobs"]
        return jobs.get("reconcile", {}).get("runs", 0) >= 2

    wait_for(reconciled_twice, 30, "two reconcile passes of the new agent")
    assert not live_containers(service["ServiceId"])  # MinSize 1, yet nothing started
    assert "idle since" in agent.cli("services", "describe", "sleeper").stdout
    answer = get(agent, "sleeper")
    assert (answer.status_code, answer.text) == (200, "Hello from slipway!\n")
    woke = [line for line in events(agent, "sleeper").splitlines() if "Service woke" in line]
    assert len(woke) == 1 and "a request came in" in woke[0]
