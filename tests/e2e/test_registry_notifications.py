"""A real docker-registry notifies the webhook router of a push made by the docker daemon.

The registry here is our own, not the session's ``registry`` fixture: its notification
endpoint points at a uvicorn server (in a thread) that runs ``webhook_router`` over a
recording sink.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import uvicorn
from fastapi import FastAPI

from slipway.api.hooks import webhook_router
from testkit.harness import (
    LocalRegistry,
    free_port,
    push_image,
    wait_for,
)

pytestmark = pytest.mark.e2e
TOKEN = "registry-notify-token"


class RecordingSink:
    """Takes every manifest push; refuses every GitHub delivery."""

    def __init__(self) -> None:
        self.images: list[tuple[str, str, str | None, str]] = []
        self.audits: list[tuple[str, str, dict[str, Any]]] = []

    def secrets_for_repository(self, urls: set[str]) -> list[str]:
        return []

    def delivery_seen(self, delivery_id: str) -> bool:
        return False

    def git_pushed(
        self, urls: set[str], ref: str, sha: str, forced: bool, deleted: bool
    ) -> list[str]:
        return []

    def image_pushed(
        self, registry_host: str, repository: str, tag: str | None, digest: str
    ) -> list[str]:
        self.images.append((registry_host, repository, tag, digest))
        return ["recorder"]

    def registry_token(self) -> str | None:
        return TOKEN

    def audit(self, source: str, outcome: str, detail: dict[str, Any]) -> None:
        self.audits.append((source, outcome, detail))


@contextlib.contextmanager
def serve_hooks(sink: RecordingSink) -> Iterator[str]:
    """``webhook_router`` on a loopback uvicorn in a thread; yields its base URL."""
    app = FastAPI()
    app.include_router(webhook_router(sink))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=10, what="uvicorn")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextlib.contextmanager
def notifying_registry(root: Path, hooks_url: str) -> Iterator[str]:
    """``docker-registry serve`` whose notifications go to ``hooks_url``; yields its host."""
    registry = LocalRegistry.start(
        root,
        notify=[
            {
                "name": "slipway",
                "url": f"{hooks_url}/hooks/registry",
                "headers": {"Authorization": [f"Bearer {TOKEN}"]},
                "timeout": "1s",
                "threshold": 3,
                "backoff": "1s",
            }
        ],
    )
    try:
        yield registry.host
    finally:
        registry.stop()


def test_push_notifies_image_pushed(
    tmp_path: Path, docker_client: docker.DockerClient, busybox_image: str
) -> None:
    sink = RecordingSink()
    with serve_hooks(sink) as hooks_url, notifying_registry(tmp_path, hooks_url) as host:
        # The same image under a last tag after it: the registry notifies in order, so
        # once the last tag's push is in, so is all that the first push caused.
        tag, last = (f"t{uuid.uuid4().hex[:10]}" for _ in range(2))
        digests = {}
        for name in (tag, last):
            image = f"{host}/notify/busybox:{name}"
            try:
                digests[name] = push_image(docker_client, busybox_image, image)
            finally:
                docker_client.images.remove(image, noprune=True)
        wait_for(
            lambda: (host, "notify/busybox", last, digests[last]) in sink.images,
            timeout=10,
            what="the last tag's notification",
        )
    assert sink.images == [
        (host, "notify/busybox", tag, digests[tag]),
        (host, "notify/busybox", last, digests[last]),
    ]
    assert sink.audits and {a[1] for a in sink.audits} <= {"accepted", "ignored"}
