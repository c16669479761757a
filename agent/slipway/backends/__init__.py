"""Container backends: the only code that touches Docker: it starts, lists and stops
instances, follows their logs and stats (``docker_logs.py``) and runs image builds
(``docker_builds.py``), each service and the builds on a network of their own behind
the host fence (``docker_networks.py``, ``fence.py``).

``Backend`` is the seam; ``DockerEngine`` (``docker_engine.py``) is the real one
and ``FakeBackend`` (``fake.py``) the in-memory one for unit tests.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import InvalidRequest

# Labels every slipway container carries; the reconciler finds instances by them.
LABEL_MANAGED = "slipway.managed"
LABEL_SERVICE_ID = "slipway.service-id"
LABEL_SERVICE_NAME = "slipway.service-name"
LABEL_DEPLOYMENT_ID = "slipway.deployment-id"
LABEL_REVISION = "slipway.revision"


# Every instance publishes its app port on this port of its own loopback address, so
# a service's instances differ by address only: one DNS name of A records, one port.
# Uncommon on purpose: a socket on all addresses at this port would leave none to them.
PUBLISHED_PORT = 28080

# A user as ``docker run --user`` takes it: a name or uid, optionally ``:group``.
_USER = re.compile(r"([a-z_][a-z0-9_-]*|\d+)(:([a-z_][a-z0-9_-]*|\d+))?")


@dataclass(frozen=True)
class Confinement:
    """What every instance is held to besides its CPU and memory: a box an app that
    turns hostile cannot widen. Each field is a setting (``instance_*``)."""

    pids_limit: int = 512  # processes and threads: a fork bomb stops here
    log_max_mb: int = 10  # Docker's log file of the instance, rotated at this size
    log_files: int = 3
    # Every other capability is dropped; an unprivileged web server needs none but
    # this one, for a port under 1024.
    capabilities: tuple[str, ...] = ("NET_BIND_SERVICE",)
    # The user instances run as: "" keeps the image's own (runtime images switch to an
    # unprivileged one themselves); "uid[:gid]" or a name forces it on every instance.
    user: str = ""

    def docker_log_options(self) -> dict[str, str]:
        return {"max-size": f"{self.log_max_mb}m", "max-file": str(self.log_files)}

    def check(self) -> None:
        """Refuse settings that would not confine, naming the setting."""
        if self.pids_limit < 16:
            raise InvalidRequest(f"instance_pids_limit must be 16 or more, not {self.pids_limit}")
        if self.log_max_mb < 1 or self.log_files < 1:
            raise InvalidRequest("instance_log_max_mb and instance_log_files must be 1 or more")
        for cap in self.capabilities:
            if not cap.replace("_", "").isalnum() or not cap.isupper():
                raise InvalidRequest(f"instance_capabilities: {cap!r} is not a capability name")
        if self.user and not _USER.fullmatch(self.user):
            raise InvalidRequest(
                f"instance_user: {self.user!r} is not a user (name or uid, optionally :group)"
            )


@dataclass(frozen=True)
class InstanceSpec:
    """What to run for one instance of a deployment."""

    service_id: str
    service_name: str
    deployment_id: str
    revision: str  # image digest "sha256:..."
    image: str  # e.g. "127.0.0.1:5000/hello@sha256:..."
    port: int  # container port the app listens on; PORT is set to it
    env: Mapping[str, str] = field(default_factory=dict)
    command: str | None = None  # StartCommand, run with /bin/sh -c
    cpu_units: int = 1024  # App Runner CPU units: 1024 = 1 vCPU
    memory_mb: int = 2048
    index: int = 0  # instance number within the deployment
    extra_labels: Mapping[str, str] = field(default_factory=dict)
    # Docker networks a VPC connector names, joined besides the service's own.
    networks: tuple[str, ...] = ()


@dataclass(frozen=True)
class Instance:
    """One container as the engine reports it."""

    id: str
    name: str
    service_id: str
    deployment_id: str
    revision: str
    state: str  # docker's: created, running, restarting, exited, dead, paused
    host_port: int | None  # published host port of the app port; None if not running
    exit_code: int | None
    started_at: str | None
    restart_count: int = 0  # times the engine restarted it after it exited
    host_ip: str | None = None  # the address its port is published on; None if not running
    node: str | None = None  # on a cluster, the node it runs on (or last ran on)

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def address(self) -> str | None:
        """Where Caddy and health checks reach it: ``ip:port``."""
        if not self.host_ip or not self.host_port:
            return None
        return f"{self.host_ip}:{self.host_port}"


# The source of a log record: the instance's stdout or stderr.
STDOUT, STDERR = 1, 2


class LogStream(Protocol):
    """One followed log stream of an instance: each step yields the ``(source, record)``
    pairs that arrived together, a record being ``<RFC 3339 timestamp> <text>``."""

    running: bool  # the instance ran when the stream opened; if not, it holds everything

    def __iter__(self) -> Iterator[list[tuple[int, bytes]]]: ...

    def interrupt(self) -> None:
        """End the stream from another thread."""

    def close(self) -> None: ...


class Backend(Protocol):
    """Runs instances; every method is safe to repeat."""

    def pull(self, image: str, auth: tuple[str, str] | None = None) -> None: ...

    def start_instance(self, spec: InstanceSpec) -> Instance: ...

    def network_problems(self, names: list[str]) -> dict[str, str]:
        """{name: why} for each of ``names`` that instances cannot join (absent, not a
        user-defined bridge, slipway's own): what a VPC connector may name."""

    def get_instance(self, instance_id: str) -> Instance | None: ...

    def list_instances(self, service_id: str | None = None) -> list[Instance]: ...

    def stop_instance(self, instance_id: str, timeout: int = 10) -> None: ...

    def remove_image(self, image: str) -> None: ...

    def logs(self, instance_id: str, tail: int = 50) -> str: ...

    def follow_logs(self, instance_id: str, since_ns: int) -> LogStream | None:
        """The instance's output from ``since_ns`` (0: all kept) on, followed while it
        runs; None when the instance is gone."""

    def instance_stats(self, instance_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """One sample per instance (id or name) in Docker's stats shape (``cpu_stats``,
        ``precpu_stats``, ``memory_stats``); instances that are gone are left out."""

    def cpu_limits(self, instance_ids: Iterable[str]) -> dict[str, float | None]:
        """Cores each instance may use, None for no limit; gone ones left out."""


__all__ = [
    "LABEL_DEPLOYMENT_ID",
    "LABEL_MANAGED",
    "LABEL_REVISION",
    "LABEL_SERVICE_ID",
    "LABEL_SERVICE_NAME",
    "PUBLISHED_PORT",
    "STDERR",
    "STDOUT",
    "Backend",
    "Instance",
    "InstanceSpec",
    "LogStream",
]
