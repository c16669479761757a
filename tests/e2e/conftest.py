"""Real components for e2e tests: Caddy, a local registry, docker and a busybox image.

Fixtures:
- ``docker_client`` (session): a ``docker.DockerClient``; skips if no daemon answers.
- ``busybox_image`` (session): ``slipway-test/busybox:latest``, imported offline from the
  host's busybox-static; serves ``/www/index.html`` with ``httpd -f -p $PORT -h /www``.
- ``registry`` (session): ``docker-registry serve`` on 127.0.0.1:<free port>, storage in tmp.
- ``caddy`` (per test): ``caddy run`` with only its admin API on 127.0.0.1:<free port>;
  ``http_port`` is a free port for the server the Router configures.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import httpx
import pytest

BUSYBOX_IMAGE = "slipway-test/busybox:latest"
BUSYBOX_INDEX = "hello from slipway busybox\n"
TEST_LABEL = "slipway.test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(
    url: str, what: str, process: subprocess.Popen, log: Path, seconds: float = 10
) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not answer at {url} within {seconds}s:\n{log.read_text()}")


def stop_process(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.skip(f"no docker daemon: {exc}")
    yield client
    client.close()


def _busybox_tar() -> bytes:
    busybox = Path("/bin/busybox")
    if not busybox.exists():
        pytest.skip("busybox-static is not installed (apt-get install busybox-static)")
    applets = subprocess.run(
        [str(busybox), "--list"], check=True, capture_output=True, text=True
    ).stdout.split()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for directory in ("bin", "tmp", "www", "etc"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if directory == "tmp" else 0o755
            tar.addfile(info)
        tar.add(str(busybox), arcname="bin/busybox")
        for applet in applets:
            if applet != "busybox":
                link = tarfile.TarInfo(f"bin/{applet}")
                link.type, link.linkname = tarfile.SYMTYPE, "busybox"
                tar.addfile(link)
        for name, text in (
            ("www/index.html", BUSYBOX_INDEX),
            ("etc/passwd", "root:x:0:0:root:/:/bin/sh\n"),
        ):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture(scope="session")
def busybox_image(docker_client: docker.DockerClient) -> str:
    """A tiny offline image; created once, then reused across runs."""
    try:
        docker_client.images.get(BUSYBOX_IMAGE)
        return BUSYBOX_IMAGE
    except docker.errors.ImageNotFound:
        pass
    repository, tag = BUSYBOX_IMAGE.split(":")
    docker_client.api.import_image_from_data(
        _busybox_tar(),
        repository=repository,
        tag=tag,
        changes=['CMD ["/bin/sh"]', "ENV PATH=/bin"],
    )
    docker_client.images.get(BUSYBOX_IMAGE)
    return BUSYBOX_IMAGE


class LocalRegistry:
    """A docker-registry process; ``host`` is what goes in image names."""

    def __init__(self, host: str, process: subprocess.Popen, log: Path) -> None:
        self.host = host
        self.url = f"http://{host}"
        self.process = process
        self.log = log

    def push(self, client: docker.DockerClient, local_image: str, repository: str, tag: str) -> str:
        """Tag ``local_image`` into this registry, push it, return the manifest digest."""
        target = f"{self.host}/{repository}"
        client.images.get(local_image).tag(target, tag=tag)
        digest = None
        for event in client.api.push(target, tag=tag, stream=True, decode=True):
            if event.get("error"):
                raise RuntimeError(f"push of {target}:{tag} failed: {event['error']}")
            digest = (event.get("aux") or {}).get("Digest", digest)
        if digest is None:
            raise RuntimeError(f"push of {target}:{tag} reported no digest")
        return digest


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    binary = require_binary("docker-registry")
    root = tmp_path_factory.mktemp("registry")
    host = f"127.0.0.1:{free_port()}"
    config = {
        "version": 0.1,
        "log": {"level": "warn"},
        "storage": {
            "filesystem": {"rootdirectory": str(root / "data")},
            "delete": {"enabled": True},
        },
        "http": {"addr": host},
    }
    (root / "config.yml").write_text(json.dumps(config))  # JSON is YAML
    log = root / "registry.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [binary, "serve", str(root / "config.yml")], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_for(f"http://{host}/v2/", "docker-registry", process, log)
        yield LocalRegistry(host, process, log)
    finally:
        stop_process(process)


class CaddyProcess:
    """A ``caddy run`` we own: admin API on a free port, config state in a tmp dir."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.binary = require_binary("caddy")
        self.admin_port = free_port()
        self.http_port = free_port()
        self.admin_url = f"http://127.0.0.1:{self.admin_port}"
        self.log = root / "caddy.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        """Start with an empty config: only the admin endpoint, no HTTP server."""
        config = self.root / "initial.json"
        config.write_text(json.dumps({"admin": {"listen": f"127.0.0.1:{self.admin_port}"}}))
        # Caddy autosaves its config under XDG dirs: keep that out of the real home.
        env = {
            **os.environ,
            "HOME": str(self.root),
            "XDG_CONFIG_HOME": str(self.root / "config"),
            "XDG_DATA_HOME": str(self.root / "data"),
        }
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [self.binary, "run", "--config", str(config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        wait_for(f"{self.admin_url}/config/", "caddy", self.process, self.log)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None

    def restart(self) -> None:
        """Kill and start again: Caddy comes back with the empty initial config."""
        self.stop()
        self.start()


@pytest.fixture
def caddy(tmp_path: Path) -> Iterator[CaddyProcess]:
    process = CaddyProcess(tmp_path)
    process.start()
    try:
        yield process
    finally:
        process.stop()
