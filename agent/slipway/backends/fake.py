"""An in-memory Backend for unit tests of the code above the adapters.

Knobs:
- ``fail_pull[image] = exc``: ``pull(image)`` raises ``exc`` (e.g. ``ImageNotFound(...)``).
- ``fail_start[image] = exc``: ``start_instance`` of that image raises ``exc``.
- ``exit_on_start[image] = code``: instances of that image are created already exited.
- ``exit_instance(id, code)``: a running instance dies now.
- ``log_lines[id]``: what ``logs`` returns.
- ``log_streams[id]``: what each ``follow_logs(id, ...)`` call gets, in turn: a
  ``FakeLogStream`` or an exception to raise; None (the instance is gone) once used up.
  ``followed_since`` records each call's ``since_ns``.
- ``networks``: the Docker networks that instances may join (VPC connectors'); an
  instance's joined ones are in its spec (``specs[id].networks``).
- ``stats[id]``, ``limits[id]``: what ``instance_stats`` and ``cpu_limits`` report;
  ids without an entry are gone.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from ..errors import BackendError, SlipwayError
from . import PUBLISHED_PORT, Instance, InstanceSpec, LogStream
from .docker_engine import container_name


class FakeLogStream:
    """A log stream that yields its frames one per step, as a slow app writes, then ends."""

    def __init__(self, frames: list[tuple[int, bytes]], running: bool) -> None:
        self.running = running
        self._frames = frames

    def __iter__(self) -> Iterator[list[tuple[int, bytes]]]:
        for frame in self._frames:
            yield [frame]

    def interrupt(self) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class FakeBackend:
    """Records what was asked of it; instances are plain Instance records."""

    pulled: list[str] = field(default_factory=list)
    removed_images: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    specs: dict[str, InstanceSpec] = field(default_factory=dict)
    fail_pull: dict[str, SlipwayError] = field(default_factory=dict)
    fail_start: dict[str, SlipwayError] = field(default_factory=dict)
    exit_on_start: dict[str, int] = field(default_factory=dict)
    log_lines: dict[str, list[str]] = field(default_factory=dict)
    log_streams: dict[str, list[LogStream | SlipwayError]] = field(default_factory=dict)
    followed_since: list[int] = field(default_factory=list)
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    limits: dict[str, float | None] = field(default_factory=dict)
    networks: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._instances: dict[str, Instance] = {}
        self._ids = itertools.count(1)
        self._addresses = itertools.count(1)
        self._bound: dict[str, str] = {}  # instance id -> its address, kept across restarts

    def pull(self, image: str, auth: tuple[str, str] | None = None) -> None:
        if image in self.fail_pull:
            raise self.fail_pull[image]
        self.pulled.append(image)

    def start_instance(self, spec: InstanceSpec) -> Instance:
        if spec.image in self.fail_start:
            raise self.fail_start[spec.image]
        name = container_name(spec)
        for existing in self._instances.values():
            if existing.name == name:
                if existing.deployment_id != spec.deployment_id:
                    raise BackendError(f"container name {name} is taken by another container")
                return existing
        code = self.exit_on_start.get(spec.image)
        instance = Instance(
            id=f"fake{next(self._ids):012d}",
            name=name,
            service_id=spec.service_id,
            deployment_id=spec.deployment_id,
            revision=spec.revision,
            state="running" if code is None else "exited",
            host_port=PUBLISHED_PORT if code is None and spec.port else None,
            exit_code=code,
            started_at=datetime.now(UTC).isoformat(),
        )
        n = next(self._addresses)
        self._bound[instance.id] = f"127.77.{n // 254}.{n % 254 + 1}"
        if code is None and spec.port:  # a worker's (port 0) publishes nothing
            instance = replace(instance, host_ip=self._bound[instance.id])
        self._instances[instance.id] = instance
        self.specs[instance.id] = spec
        return instance

    def network_problems(self, names: list[str]) -> dict[str, str]:
        return {n: "does not exist on this host" for n in names if n not in self.networks}

    def exit_instance(self, instance_id: str, exit_code: int = 1) -> None:
        """Make a running instance die, as a crashing app would."""
        self._instances[instance_id] = replace(
            self._instances[instance_id],
            state="exited",
            host_port=None,
            host_ip=None,
            exit_code=exit_code,
        )

    def restart_instance(self, instance_id: str) -> None:
        """What the engine's restart policy does to a crashed instance."""
        inst = self._instances[instance_id]
        self._instances[instance_id] = replace(
            inst,
            state="running",
            host_port=PUBLISHED_PORT if self.specs[instance_id].port else None,
            host_ip=self._bound[instance_id] if self.specs[instance_id].port else None,
            restart_count=inst.restart_count + 1,
        )

    def get_instance(self, instance_id: str) -> Instance | None:
        return self._instances.get(instance_id)

    def list_instances(self, service_id: str | None = None) -> list[Instance]:
        found = [
            i for i in self._instances.values() if service_id is None or i.service_id == service_id
        ]
        return sorted(found, key=lambda i: i.name)

    def stop_instance(self, instance_id: str, timeout: int = 10) -> None:
        if self._instances.pop(instance_id, None) is not None:
            self.stopped.append(instance_id)

    def remove_image(self, image: str) -> None:
        self.removed_images.append(image)

    def logs(self, instance_id: str, tail: int = 50) -> str:
        if instance_id not in self._instances:
            raise BackendError(f"container {instance_id} not found")
        lines = self.log_lines.get(instance_id, [])
        return "".join(f"{line}\n" for line in lines[-tail:])

    def follow_logs(self, instance_id: str, since_ns: int) -> LogStream | None:
        self.followed_since.append(since_ns)
        steps = self.log_streams.get(instance_id)
        if not steps:
            return None
        step = steps.pop(0)
        if isinstance(step, SlipwayError):
            raise step
        return step

    def instance_stats(self, instance_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        return {i: self.stats[i] for i in instance_ids if i in self.stats}

    def cpu_limits(self, instance_ids: Iterable[str]) -> dict[str, float | None]:
        return {i: self.limits[i] for i in instance_ids if i in self.limits}
