"""Deployment feedback to the source's host: a GitHub Deployment with statuses and a
commit status ``slipway/<service>`` for code services that have a connection.

Feedback is a courtesy: it is posted in order on a thread of its own (GitHub asks
for a pause between writes), and when GitHub cannot be reached the deployment
goes on and the service's events stream says so.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from .connections import Connections
from .errors import SlipwayError
from .models import ServiceSpec
from .records import Operation, Service
from .sources.github import GitHub, github_repo_name


class Feedback(Protocol):
    def started(
        self, service: Service, spec: ServiceSpec, op: Operation, revision: str
    ) -> None: ...

    def finished(self, service: Service, op: Operation, *, ok: bool, message: str) -> None: ...


class NoFeedback:
    def started(self, service: Service, spec: ServiceSpec, op: Operation, revision: str) -> None:
        return None

    def finished(self, service: Service, op: Operation, *, ok: bool, message: str) -> None:
        return None


class GitHubFeedback:
    def __init__(
        self,
        github: GitHub,
        connections: Connections,
        hosts: tuple[str, ...],
        service_url: Callable[[Service], str],
        note: Callable[[str, str], None],
        transient: Callable[[Service], bool] = lambda service: False,
    ) -> None:
        """``transient``: whether a service's environment goes away (previews)."""
        self.github = github
        self.transient = transient
        self.connections = connections
        self.hosts = hosts
        self.service_url = service_url
        self.note = note
        # operation id -> (connection arn, repository url, sha, GitHub deployment id)
        self._open: dict[str, tuple[str, str, str, int | None]] = {}
        self._lock = threading.Lock()
        self._queue = ThreadPoolExecutor(max_workers=1, thread_name_prefix="slipway-github")

    def started(self, service: Service, spec: ServiceSpec, op: Operation, revision: str) -> None:
        code, arn = spec.source.code, spec.source.connection_arn
        if not code or not arn or not github_repo_name(code.repository_url, hosts=self.hosts):
            return
        with self._lock:
            self._open[op.id] = (arn, code.repository_url, revision, None)
        self._queue.submit(self._post_started, service, op)

    def finished(self, service: Service, op: Operation, *, ok: bool, message: str) -> None:
        with self._lock:
            if op.id not in self._open:
                return
        self._queue.submit(self._post_finished, service, op, ok, message)

    def _post_started(self, service: Service, op: Operation) -> None:
        with self._lock:
            arn, url, sha, _ = self._open[op.id]
        deployment_id = None
        try:
            deployment_id = self.github.deployment_started(
                self.connections.token(arn),
                url,
                sha,
                service.name,
                f"slipway {op.type} {op.id}",
                transient=self.transient(service),
            )
        except SlipwayError as exc:
            deployment_id = getattr(exc, "deployment_id", None)
            self.note(service.id, f"GitHub deployment feedback failed: {exc.message}")
        with self._lock:
            self._open[op.id] = (arn, url, sha, deployment_id)

    def _post_finished(self, service: Service, op: Operation, ok: bool, message: str) -> None:
        with self._lock:
            arn, url, sha, deployment_id = self._open.pop(op.id)
        try:
            self.github.deployment_finished(
                self.connections.token(arn),
                url,
                sha,
                deployment_id,
                service.name,
                ok,
                self.service_url(service) if ok else None,
                message,
            )
        except SlipwayError as exc:
            self.note(service.id, f"GitHub deployment feedback failed: {exc.message}")
