"""The docker calls of image builds: the classic builder's stream, build containers, images.

Separate from ``builds/builder.py`` because only ``backends/`` touches docker: the
builder decides what to build, what a failure means and which images to keep; this
module makes the calls and translates docker's errors into ``BackendError``.

The build runs in a thread reading ``client.api.build``'s stream. Cancelling shuts the
streaming connection down: dockerd 20.10 then cancels the build, kills the step's
container and removes it (``forcerm``); ``remove_build_container`` checks it is gone.
"""

from __future__ import annotations

import contextlib
import json
import queue
import re
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

import docker
import docker.errors
import requests
from docker import DockerClient
from docker.api.build import process_dockerfile
from docker.utils import tar

from ..errors import BackendError

# The response of client.api.build is not handed out by docker-py, but the builder needs
# it to cancel a build (closing it is what cancels a classic build). A requests response
# hook, active only on the thread that starts the build, catches it.
_capture = threading.local()


def _capture_response(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    if getattr(_capture, "active", False):
        _capture.response = response


def _shutdown(response: requests.Response) -> None:
    fp = getattr(getattr(response.raw, "_fp", None), "fp", None)
    sock = getattr(getattr(fp, "raw", None), "_sock", None)
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    else:
        response.close()


def _created(created: str) -> float:
    """Seconds since the epoch; docker's RFC 3339 nanosecond strings don't sort as text."""
    match = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?", created)
    if not match:
        return 0.0
    seconds = datetime.fromisoformat(match[1]).replace(tzinfo=UTC).timestamp()
    return seconds + float("0" + (match[2] or ""))


def _build(api: docker.APIClient, kwargs: dict[str, Any]) -> Any:
    """``api.build`` with the ``/build`` parameters docker-py does not pass on
    (``cgroupparent``, ``cpuperiod``, ``cpuquota``): the same request, made here."""
    path, extra = kwargs["path"], kwargs.get("params") or {}
    dockerfile = process_dockerfile(kwargs["dockerfile"], path)
    context = tar(path, dockerfile=dockerfile)
    buildargs = dict(kwargs.get("buildargs") or {})
    for name, value in api._proxy_configs.get_environment().items():
        buildargs.setdefault(name, value)
    params = {
        "t": kwargs["tag"],
        "rm": True,
        "forcerm": True,  # intermediate containers are removed whatever happens
        "nocache": kwargs.get("nocache", False),
        "dockerfile": dockerfile[0],
        "buildargs": json.dumps(buildargs),
        **({"networkmode": kwargs["network"]} if kwargs.get("network") else {}),
        **extra,
    }
    headers = {"Content-Type": "application/tar"}
    api._set_auth_headers(headers)
    try:
        # No socket timeout: a silent step may take minutes.
        response = api._post(
            api._url("/build"),
            data=context,
            params=params,
            headers=headers,
            stream=True,
            timeout=None,
        )
    finally:
        context.close()
    return api._stream_helper(response, decode=True)


def _failure(exc: Exception) -> tuple[str, BackendError]:
    """``("refused", …)`` when docker answered the build with an error, else ``("error", …)``."""
    if isinstance(exc, docker.errors.APIError):
        kind, message = "refused", str(exc.explanation or exc)
    else:
        kind, message = "error", f"lost the connection to docker during the build: {exc}"
    error = BackendError(message)
    error.__cause__ = exc
    return kind, error


class StreamingBuild:
    """``client.api.build`` in a thread; ``events`` receives ``("chunk", decoded chunk)``,
    then ``("end", None)``, or a failure as ``("refused" | "error", BackendError)``."""

    def __init__(self, api: docker.APIClient, kwargs: dict[str, Any]) -> None:
        hooks = api.hooks.setdefault("response", [])
        if _capture_response not in hooks:
            hooks.append(_capture_response)
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._response: requests.Response | None = None
        self._cancelled = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._run, args=(api, kwargs), name="slipway-build", daemon=True
        )
        self._thread.start()

    def _run(self, api: docker.APIClient, kwargs: dict[str, Any]) -> None:
        _capture.active, _capture.response = True, None
        try:
            stream = _build(api, kwargs)
        except Exception as exc:  # handed to the waiting thread, translated
            self.events.put(_failure(exc))
            return
        finally:
            response, _capture.active, _capture.response = _capture.response, False, None
        with self._lock:
            self._response = response
            if self._cancelled and response is not None:
                _shutdown(response)
        try:
            for chunk in stream:
                self.events.put(("chunk", chunk))
            self.events.put(("end", None))
        except Exception as exc:  # as above
            self.events.put(_failure(exc))
        finally:
            if response is not None:
                response.close()

    def cancel(self, wait: float) -> None:
        """Close the connection (dockerd cancels the build) and wait for the reader."""
        with self._lock:
            self._cancelled = True
            if self._response is not None:
                _shutdown(self._response)
        self._thread.join(wait)


class DockerBuilds:
    """Builds and the images they leave, on one Docker Engine (client made on first use)."""

    def __init__(
        self, client: DockerClient | None = None, network: Callable[[], str] | None = None
    ) -> None:
        self._client = client
        self.network = network  # names the fenced build network, made if missing (a prune)

    @property
    def client(self) -> DockerClient:
        # Made on first use: docker.from_env() asks the daemon for its API version.
        if self._client is None:
            try:
                self._client = docker.from_env()
            except docker.errors.DockerException as exc:
                raise BackendError(f"docker does not answer: {exc}") from exc
        return self._client

    def start(
        self,
        *,
        path: str,
        dockerfile: str,
        tag: str,
        buildargs: dict[str, str],
        nocache: bool,
        params: dict[str, str | int] | None = None,
    ) -> StreamingBuild:
        """Start a classic build of the context at ``path``; intermediate containers are
        removed whatever happens (``forcerm``). ``params`` are further ``/build``
        parameters: the build's limits (``build_box.BuildBox.build_params``)."""
        return StreamingBuild(
            self.client.api,
            {
                "path": path,
                "dockerfile": dockerfile,
                "tag": tag,
                "buildargs": buildargs,
                "nocache": nocache,
                "params": params,
                "network": self.network() if self.network else None,
            },
        )

    def upper_dir(self, container_id: str) -> str | None:
        """Where a running step's writes land (overlay2's ``UpperDir``); None if it is
        gone or the storage driver has none."""
        try:
            attrs = self.client.api.inspect_container(container_id)
        except docker.errors.DockerException:
            return None
        return ((attrs.get("GraphDriver") or {}).get("Data") or {}).get("UpperDir")

    def image_size(self, image: str) -> int:
        """The image's size in bytes, its base image included."""
        try:
            return int(self.client.api.inspect_image(image)["Size"])
        except docker.errors.DockerException as exc:
            raise BackendError(f"could not inspect image {image}: {exc}") from exc

    def image_id(self, tag: str) -> str:
        api = self.client.api
        try:
            return api.inspect_image(tag)["Id"]
        except docker.errors.DockerException as exc:
            raise BackendError(str(exc)) from exc

    def remove_build_container(self, container_id: str) -> None:
        # dockerd removes a cancelled step's container itself, within a second or so.
        for _ in range(20):
            try:
                self.client.api.inspect_container(container_id)
            except docker.errors.NotFound:
                return
            except docker.errors.DockerException:
                break
            time.sleep(0.25)
        try:
            self.client.api.remove_container(container_id, force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.DockerException as exc:
            raise BackendError(f"could not remove build container {container_id}: {exc}") from exc

    def images(self, repository: str) -> list[dict[str, Any]]:
        """The repository's images as /images/json lists them (one call, no inspect each)."""
        try:
            return self.client.api.images(name=repository)
        except docker.errors.DockerException as exc:
            raise BackendError(f"could not list images of {repository}: {exc}") from exc

    def created(self, image_id: str) -> float:
        """When the image was made, to the nanosecond (0.0 if it is gone)."""
        try:
            return _created(self.client.api.inspect_image(image_id)["Created"])
        except docker.errors.NotFound:
            return 0.0
        except docker.errors.DockerException as exc:
            raise BackendError(f"could not inspect image {image_id}: {exc}") from exc

    def remove_image(
        self, tag: str, *, force: bool = False
    ) -> Literal["removed", "gone", "in use"]:
        """Remove ``tag``; "gone" if it already was, and without ``force`` "in use" when a
        container still uses it (docker's 409)."""
        try:
            self.client.api.remove_image(tag, force=force)
        except docker.errors.NotFound:
            return "gone"
        except docker.errors.APIError as exc:
            if exc.status_code == 409 and not force:
                return "in use"
            raise BackendError(f"could not remove image {tag}: {exc}") from exc
        return "removed"
