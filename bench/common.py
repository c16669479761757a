"""What the benchmarks share: recording a table in BENCHMARKS.md, a private
registry + Caddy + agent stack like the e2e tests use, and the example app deployed on it."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import docker

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # testkit/, which the tests share

from testkit.harness import (  # noqa: E402
    AgentProcess,
    CaddyProcess,
    LocalRegistry,
    image_source,
    push_image,
    wait_status,
)


def record(section: str, table: str, intro: str = "", path: Path | None = None) -> None:
    """Add ``table`` at the end of ``## section`` in BENCHMARKS.md (before the next
    section), opening the section (with ``intro``) at the end of the file the first time."""
    path = path or ROOT / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else ""
    heading = f"\n## {section}\n"
    start = text.find(heading)
    if start < 0:
        text += heading + "\n" + (intro.rstrip() + "\n\n" if intro else "") + table + "\n"
    else:  # before the newline that opens the next section, or at the end
        end = text.find("\n## ", start + len(heading))
        end = len(text) if end < 0 else end
        text = text[:end].rstrip("\n") + "\n\n" + table + "\n" + text[end:]
    path.write_text(text)


@contextmanager
def local_stack(
    *,
    beside: Callable[[LocalRegistry], AbstractContextManager[object]] | None = None,
    **agent_settings: Any,
) -> Iterator[tuple[LocalRegistry, CaddyProcess, AgentProcess]]:
    """A registry, a Caddy and an agent of their own, in a temporary directory; with
    ``beside``, what else runs from when the registry is up until the agent has ended
    (``bench/cluster.py``'s Swarm, whose nodes pull from the registry)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for part in ("registry", "caddy", "agent"):
            (root / part).mkdir()
        registry = LocalRegistry.start(root / "registry")
        caddy = CaddyProcess(root / "caddy")
        try:
            with beside(registry) if beside else nullcontext():
                caddy.start()
                agent = AgentProcess(
                    root / "agent", caddy.admin_url, caddy.http_port, **agent_settings
                )
                try:
                    agent.start()
                    yield registry, caddy, agent
                finally:
                    agent.kill()
                    agent.stop_children()
        finally:
            caddy.stop()
            registry.stop()


@contextmanager
def example_service(
    client: docker.DockerClient,
    registry: LocalRegistry,
    agent: AgentProcess,
    name: str,
    repository: str,
    *,
    auto_deployments: bool = False,
    **create_service: Any,
) -> Iterator[tuple[str, str]]:
    """``examples/hello`` built, pushed as ``<registry>/<repository>:live`` and RUNNING as
    the image service ``name``, with an HTTP health check on /health every second
    (``create_service`` adds CreateService parameters or replaces that health check).
    Yields (image, service ARN); the service's containers are removed on the way out,
    whatever happened (the agent is stopped first, or it would replace them)."""
    try:
        client.images.build(path=str(ROOT / "examples" / "hello"), tag="slipway-bench/hello")
        image = f"{registry.host}/{repository}:live"
        push_image(client, "slipway-bench/hello", image)
        api = agent.client()
        arn = api.create_service(
            ServiceName=name,
            SourceConfiguration=image_source(image, port=None, auto=auto_deployments),
            **{
                "HealthCheckConfiguration": {"Protocol": "HTTP", "Path": "/health", "Interval": 1},
                **create_service,
            },
        )["Service"]["ServiceArn"]
        wait_status(api, arn, "RUNNING")
        yield image, arn
    finally:
        agent.kill()
        for container in client.containers.list(
            all=True, filters={"label": f"slipway.service-name={name}"}
        ):
            container.remove(force=True)


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process from /proc (its children not included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mb(pid: int, field: str = "VmRSS") -> float:
    """A memory figure of one process from /proc/<pid>/status (VmRSS, VmHWM for the peak)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0
