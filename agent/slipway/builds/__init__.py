"""Builds of code revisions: ``apprunner.yaml`` parsing (``config.py``), managed runtimes
(``runtimes.py``, templates in ``runtimes/<name>/``), the Dockerfile a build runs
(``dockerfile.py``, pure), reading its progress (``progress.py``) and running it
(``builder.py``, through ``backends/docker_builds.py``).

``CodeConfig`` is the one shape both configuration sources turn into: the
``apprunner.yaml`` file (ConfigurationSource REPOSITORY) and the API's
``CodeConfigurationValues`` (ConfigurationSource API).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class SecretRef:
    """A run-time secret: the env var ``name`` gets the value ``value_from`` points at."""

    name: str
    value_from: str


@dataclass(frozen=True)
class CodeConfig:
    runtime: str  # the apprunner.yaml runtime name: "python3", "python311", "nodejs18", ...
    runtime_version: str | None = None  # run.runtime-version: "3", "3.11" or "3.11.2"
    pre_build: tuple[str, ...] = ()
    build: tuple[str, ...] = ()
    post_build: tuple[str, ...] = ()
    build_env: Mapping[str, str] = field(default_factory=dict)
    pre_run: tuple[str, ...] = ()
    command: str | None = None  # run.command; None: the runtime's default (nodejs: npm start)
    port: int = 8080
    port_env: str | None = None  # run.network.env: another env var that gets the port
    network: bool = False  # run.network given (a worker service must not give it)
    env: Mapping[str, str] = field(default_factory=dict)
    secrets: tuple[SecretRef, ...] = ()
