"""Built images onto a registry every Swarm node pulls from.

A code service's build is a local tag on the daemon that built it (``slipway/<service>:
<sha>``); a node elsewhere cannot pull that. Before such an image runs on the cluster it
is pushed to ``swarm_registry`` and the instance names it by digest there, so every node
runs exactly what was built. Images of image services already name their registry and
a digest, and pass unchanged.
"""

from __future__ import annotations

import threading

import docker
import docker.errors
import requests

from ..errors import BackendError

_DOCKER_ERRORS = (docker.errors.DockerException, requests.RequestException)


def is_local_build(image: str) -> bool:
    """A reference with neither a registry host nor a digest: a tag only the daemon
    that built it holds."""
    registry = docker.auth.resolve_repository_name(image.split("@", 1)[0])[0]
    return "@" not in image and registry == docker.auth.INDEX_NAME and "/" in image


class BuildPusher:
    """Pushes local builds from the builder's daemon to ``registry`` (host:port)."""

    def __init__(self, registry: str, client: docker.DockerClient | None = None) -> None:
        self.registry = registry
        self._client = client
        self._pushed: dict[str, str] = {}  # local tag -> pushed reference by digest
        self._lock = threading.Lock()

    def shareable(self, image: str) -> str:
        """``image`` as every node can pull it: pushed first if it is a local build."""
        if not is_local_build(image):
            return image
        with self._lock:
            if image not in self._pushed:
                self._pushed[image] = self._push(image)
            return self._pushed[image]

    def _push(self, image: str) -> str:
        if not self.registry:
            raise BackendError(
                f"{image} was built on this host and the cluster's nodes cannot pull it:"
                " set swarm_registry to a registry every node reaches"
            )
        repository, _, tag = image.rpartition(":")
        target = f"{self.registry}/{repository}"
        digest = None
        try:
            client = self._client = self._client or docker.from_env()
            client.images.get(image).tag(target, tag=tag)
            for event in client.api.push(target, tag=tag, stream=True, decode=True):
                if event.get("error"):
                    raise BackendError(
                        f"pushing {image} to {self.registry} failed: {event['error']}"
                    )
                digest = (event.get("aux") or {}).get("Digest", digest)
        except _DOCKER_ERRORS as exc:
            raise BackendError(f"pushing {image} to {self.registry} failed: {exc}") from exc
        if digest is None:
            raise BackendError(f"pushing {image} to {self.registry} reported no digest")
        return f"{target}@{digest}"
