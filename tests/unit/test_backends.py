"""Pure parts of the docker backend, and the fake backend others test against."""

from __future__ import annotations

import pytest

from slipway.backends import InstanceSpec
from slipway.backends.docker_engine import container_name, nano_cpus
from slipway.backends.docker_pulls import pull_error
from slipway.backends.fake import FakeBackend
from slipway.errors import (
    BackendError,
    ImageNotFound,
    RegistryAuthFailed,
    RegistryUnreachable,
)


def spec(**kwargs: object) -> InstanceSpec:
    values: dict = {
        "service_id": "svc1",
        "service_name": "hello",
        "deployment_id": "0123456789abcdef",
        "revision": "sha256:" + "c" * 64,
        "image": "127.0.0.1:5000/hello@sha256:" + "c" * 64,
        "port": 8080,
    }
    values.update(kwargs)
    return InstanceSpec(**values)


def test_container_name() -> None:
    assert container_name(spec(index=2)) == "slipway-hello-01234567-2"
    assert container_name(spec(service_name="my app/x")) == "slipway-my-app-x-01234567-0"


@pytest.mark.parametrize(("units", "nano"), [(1024, 10**9), (256, 250_000_000), (4096, 4 * 10**9)])
def test_nano_cpus(units: int, nano: int) -> None:
    assert nano_cpus(units) == nano


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (
            "Get http://127.0.0.1:1/v2/: dial tcp 127.0.0.1:1: connect: connection refused",
            RegistryUnreachable,
        ),
        (
            "Get https://nowhere.invalid/v2/: dial tcp: lookup nowhere.invalid: no such host",
            RegistryUnreachable,
        ),
        ("manifest for 127.0.0.1:5000/x:nope not found: manifest unknown", ImageNotFound),
        ("pull access denied for nope, repository does not exist", ImageNotFound),
        ("unauthorized: authentication required", RegistryAuthFailed),
        ("Head ...: no basic auth credentials", RegistryAuthFailed),
        ("something else entirely", BackendError),
    ],
)
def test_pull_error_mapping(message: str, error: type) -> None:
    mapped = pull_error("img", message)
    assert type(mapped) is error
    assert "img" in str(mapped)


def test_fake_backend_runs_and_stops() -> None:
    backend = FakeBackend()
    first = backend.start_instance(spec(index=0))
    second = backend.start_instance(spec(index=1))
    assert first.running and first.address == "127.77.0.2:28080"
    assert second.address == "127.77.0.3:28080"  # each its own address, the same port
    assert backend.start_instance(spec(index=0)) == first  # same instance again: reused
    assert [i.id for i in backend.list_instances("svc1")] == [first.id, second.id]
    assert backend.list_instances("other") == []
    backend.exit_instance(first.id, 137)
    dead = backend.get_instance(first.id)
    assert dead is not None
    assert (dead.state, dead.exit_code, dead.address) == ("exited", 137, None)
    backend.restart_instance(first.id)
    assert backend.get_instance(first.id).address == first.address
    backend.stop_instance(first.id)
    backend.stop_instance(first.id)
    assert backend.get_instance(first.id) is None
    assert backend.stopped == [first.id]


def test_fake_backend_knobs() -> None:
    backend = FakeBackend()
    backend.fail_pull["bad"] = ImageNotFound("no such image bad")
    with pytest.raises(ImageNotFound):
        backend.pull("bad")
    backend.pull("good")
    assert backend.pulled == ["good"]
    backend.exit_on_start["crash"] = 3
    crashed = backend.start_instance(spec(image="crash"))
    assert (crashed.state, crashed.exit_code) == ("exited", 3)
    backend.log_lines[crashed.id] = ["a", "b", "c"]
    assert backend.logs(crashed.id, tail=2) == "b\nc\n"


class _Api:
    """docker's low-level container listing and inspect, of containers bound to given
    addresses."""

    def __init__(self, addresses: list[str]) -> None:
        self.addresses = addresses

    def containers(self, **kwargs):
        return [{"Id": a} for a in self.addresses]

    def inspect_container(self, container_id: str) -> dict:
        return {
            "Id": container_id,
            "Config": {"Labels": {"slipway.managed": "true"}},
            "HostConfig": {"PortBindings": {"80/tcp": [{"HostIp": container_id}]}},
        }


def engine_with(addresses: list[str], network: str = "127.77.0.0/29"):
    import threading
    from types import SimpleNamespace

    from slipway.backends.docker_engine import DockerEngine

    engine = DockerEngine(SimpleNamespace(api=_Api(addresses)), network)
    engine._inspections._thread = threading.Thread()  # no event stream: fresh inspects
    return engine


def test_addresses_are_handed_out_round_robin_never_reused_at_once() -> None:
    engine = engine_with(["127.77.0.2"])
    assert engine._free_address() == "127.77.0.3"  # after the highest taken
    engine.client.api.addresses = []  # .2 was given up meanwhile
    assert engine._free_address() == "127.77.0.4"
    assert [engine._free_address() for _ in range(3)] == ["127.77.0.5", "127.77.0.6", "127.77.0.1"]


def test_a_full_network_is_an_error() -> None:
    engine = engine_with([f"127.77.0.{n}" for n in range(1, 7)])
    with pytest.raises(BackendError, match="no free address"):
        engine._free_address()


def test_a_listener_on_all_addresses_at_the_instance_port_is_reported() -> None:
    import socket
    from types import SimpleNamespace

    from slipway.backends.docker_engine import DockerEngine

    with socket.socket() as squatter:
        squatter.bind(("0.0.0.0", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        engine = DockerEngine(SimpleNamespace(), "127.77.0.0/16", port)
        with pytest.raises(BackendError, match=f"port {port}.*instance_port"):
            engine.check_port()
    DockerEngine(SimpleNamespace(), "127.77.0.0/16", port).check_port()


def test_confinement_settings_that_would_not_confine_are_refused() -> None:
    from slipway.backends import Confinement
    from slipway.errors import InvalidRequest

    Confinement().check()
    with pytest.raises(InvalidRequest, match="instance_pids_limit must be 16 or more, not 0"):
        Confinement(pids_limit=0).check()
    with pytest.raises(InvalidRequest, match="instance_log_max_mb"):
        Confinement(log_max_mb=0).check()
    with pytest.raises(InvalidRequest, match="instance_capabilities: 'ALL;rm' is not"):
        Confinement(capabilities=("ALL;rm",)).check()
