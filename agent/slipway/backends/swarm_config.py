"""Which container engine runs instances (``backend``), and the Swarm backend's settings.

Kept apart from ``swarm.py`` so the settings check needs no Docker client: a setting
that could never work stops the agent at its start, naming the setting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import InvalidRequest

BACKENDS = ("docker", "swarm")
# A Swarm placement constraint as ``docker service create --constraint`` takes it:
# node.id, node.hostname, node.role, node.platform.os|arch, node.labels.<key>,
# engine.labels.<key>; == or !=.
_CONSTRAINT = re.compile(
    r"(node\.(id|hostname|role|platform\.os|platform\.arch)|(node|engine)\.labels\.[\w.-]+)"
    r"\s*(==|!=)\s*\S+"
)


@dataclass(frozen=True)
class Cluster:
    """``backend: swarm``: every instance a Swarm service on the cluster whose manager
    answers at ``docker_host`` ("" = the agent's DOCKER_HOST, or the default socket),
    publishing its app port in host mode on a port of ``ports`` (first-last, unique in
    the cluster: two instances may land on one node) and placed by ``constraints``; code
    services' builds are pushed to ``registry`` (host[:port]) for the nodes to pull."""

    backend: str = "docker"
    docker_host: str = ""
    ports: str = "30000-32767"
    constraints: tuple[str, ...] = ()
    registry: str = ""  # host[:port] code services' builds are pushed to for the nodes
    # "<node host name>=<docker host>" each: where a node's own daemon answers, for the
    # stats of the instances on it (the manager has none); nodes not named give none.
    node_hosts: tuple[str, ...] = ()

    @property
    def node_daemons(self) -> dict[str, str]:
        """Node host name -> its daemon's docker host, from ``node_hosts``."""
        return dict(entry.strip().split("=", 1) for entry in self.node_hosts)

    @property
    def port_range(self) -> range:
        first, _, last = self.ports.partition("-")
        return range(int(first), int(last) + 1)

    def check(self) -> None:
        """Refuse settings that could never run an instance, naming the setting."""
        if self.backend not in BACKENDS:
            raise InvalidRequest(
                f"backend must be one of {', '.join(BACKENDS)}, not {self.backend!r}"
            )
        if not re.fullmatch(r"\d{1,5}-\d{1,5}", self.ports):
            raise InvalidRequest(f"swarm_ports: {self.ports!r} is not a range first-last")
        span = self.port_range
        if not (span.start >= 1024 and span.stop - 1 <= 65535 and len(span) >= 2):
            raise InvalidRequest(
                f"swarm_ports: {self.ports} must hold 2 or more ports within 1024-65535"
            )
        if self.docker_host and not re.match(r"(unix|tcp|ssh)://", self.docker_host):
            raise InvalidRequest(
                f"swarm_docker_host: {self.docker_host!r} is not unix://, tcp:// or ssh://"
            )
        if self.registry and not re.fullmatch(r"[\w.-]+(:\d{1,5})?", self.registry):
            raise InvalidRequest(f"swarm_registry: {self.registry!r} is not host or host:port")
        for entry in self.node_hosts:
            if not re.fullmatch(r"\s*[\w.-]+=(unix|tcp|ssh)://\S+\s*", entry):
                raise InvalidRequest(
                    f"swarm_node_docker_hosts: {entry!r} is not node=unix://..., tcp:// or ssh://"
                )
        for constraint in self.constraints:
            if not _CONSTRAINT.fullmatch(constraint.strip()):
                raise InvalidRequest(
                    f"swarm_constraints: {constraint!r} is not a Swarm constraint"
                    " (e.g. node.role==worker, node.labels.zone!=b)"
                )
