"""Following an instance's output on a cluster: its Swarm service's log stream, which
the manager gathers from whichever node runs the task (``/services/<id>/logs``), framed
like a container's, so ``docker_logs``' reader carries it unchanged."""

from __future__ import annotations

from typing import Any

import docker
import docker.errors
import requests

from ..errors import BackendError
from . import LogStream
from .docker_logs import _docker_since, _Stream

_DOCKER_ERRORS = (docker.errors.DockerException, requests.RequestException)


def follow_service(
    client: docker.DockerClient, service: str, since_ns: int, running: bool
) -> LogStream | None:
    """A stream of the Swarm service's records from ``since_ns`` on, followed while it
    lasts; None if the service is gone."""
    api = client.api
    params: dict[str, Any] = {"stdout": 1, "stderr": 1, "timestamps": 1, "follow": 1}
    if since_ns:
        params["since"] = _docker_since(since_ns)
    try:
        response = api._get(api._url("/services/{0}/logs", service), params=params, stream=True)
        api._raise_for_status(response)
        sock = api._get_raw_response_socket(response)
    except docker.errors.NotFound:
        return None
    except _DOCKER_ERRORS as exc:
        raise BackendError(f"following logs of swarm service {service} failed: {exc}") from exc
    api._disable_socket_timeout(sock)  # idle apps must not time the stream out
    return _Stream(response, sock, running)
