"""A real `slipway serve` process for e2e tests, and small waits a user would do by hand."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import docker
import docker.errors
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from slipway import keys
from slipway.backends import LABEL_MANAGED, LABEL_SERVICE_ID
from slipway.backends.docker_networks import network_name


def worker_network() -> str:
    """This test process's own slice of the instance network (127.77.0.0/16): a /20 for
    each pytest-xdist worker (``PYTEST_XDIST_WORKER`` gw0, gw1...; the first without
    xdist), so agents run side by side never reach for the same instance address."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return f"127.77.{16 * (int(worker.removeprefix('gw')) % 16)}.0/20"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listeners(port: int) -> list[tuple[str, str]]:
    """Each TCP socket listening on ``port``: its local address as /proc/net/tcp{,6}
    writes it (``0100007F:1F90``) and its inode."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    found.append((fields[1], fields[9]))
    return found


def listens(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds the TCP socket listening on ``port``."""
    inodes = {f"socket:[{inode}]" for _, inode in listeners(port)}
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(fd) in inodes:
                    return True
    return False


def wait_for(check: Callable[[], Any], timeout: float = 60, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except AssertionError:
            raise
        except Exception as exc:  # noqa: BLE001 - keep polling, report the last
            last = exc
        else:
            if last:
                return last
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def wait_until_answers(
    url: str,
    what: str,
    process: subprocess.Popen,
    log: Path,
    seconds: float = 10,
    get: Callable[[], httpx.Response] | None = None,
) -> None:
    """Until ``url`` answers (through ``get`` when given: a unix socket's client)."""
    get = get or (lambda: httpx.get(url, timeout=1))
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{log.read_text()}")
        try:
            if get().status_code < 500:
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


class LocalRegistry:
    """A docker-registry process; ``host`` is what goes in image names."""

    def __init__(self, host: str, process: subprocess.Popen, log: Path) -> None:
        self.host = host
        self.url = f"http://{host}"
        self.process = process
        self.log = log

    @classmethod
    def start(
        cls,
        root: Path,
        htpasswd: Path | None = None,
        notify: list[dict[str, Any]] | None = None,
    ) -> LocalRegistry:
        """``docker-registry serve`` on a free loopback port, storage under ``root``;
        with ``htpasswd`` (bcrypt lines), only its users may pull or push; with
        ``notify``, its notification endpoints (the registry's config)."""
        binary = require_binary("docker-registry")
        host = f"127.0.0.1:{free_port()}"
        config: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "warn"},
            "storage": {
                "filesystem": {"rootdirectory": str(root / "data")},
                "delete": {"enabled": True},
            },
            "http": {"addr": host},
        }
        if htpasswd is not None:
            config["auth"] = {"htpasswd": {"realm": "slipway-test", "path": str(htpasswd)}}
        if notify is not None:
            config["notifications"] = {"endpoints": notify}
        (root / "config.yml").write_text(json.dumps(config))  # JSON is YAML
        log = root / "registry.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [binary, "serve", str(root / "config.yml")], stdout=out, stderr=subprocess.STDOUT
            )
        try:
            wait_until_answers(f"http://{host}/v2/", "docker-registry", process, log)
        except RuntimeError:
            stop_process(process)
            raise
        return cls(host, process, log)

    def stop(self) -> None:
        stop_process(self.process)

    def requests(self) -> list[str]:
        """The request lines of the access log so far, e.g. ``GET /v2/x/tags/list HTTP/1.1``."""
        return re.findall(r'"([A-Z]+ /\S* HTTP/[\d.]+)"', self.log.read_text(errors="replace"))

    def push(self, client: docker.DockerClient, local_image: str, repository: str, tag: str) -> str:
        """Tag ``local_image`` into this registry, push it, return the manifest digest."""
        return push_image(client, local_image, f"{self.host}/{repository}:{tag}")


def push_image(client: docker.DockerClient, local_image: str, image: str) -> str:
    """Tag ``local_image`` as ``host/repository:tag``, push it, return the manifest digest."""
    target, tag = image.rsplit(":", 1)
    client.images.get(local_image).tag(target, tag=tag)
    digest = None
    for event in client.api.push(target, tag=tag, stream=True, decode=True):
        if event.get("error"):
            raise RuntimeError(f"push of {image} failed: {event['error']}")
        digest = (event.get("aux") or {}).get("Digest", digest)
    if digest is None:
        raise RuntimeError(f"push of {image} reported no digest")
    return digest


class CaddyProcess:
    """A ``caddy run`` we own: admin API on a free port, config state in a tmp dir (its
    certificates and internal CA too, under ``root/data/caddy``). With ``admin_socket``
    the admin API is a unix socket instead, as slipway's default (``admin_url`` is then
    ``unix//path``, what SLIPWAY_CADDY_ADMIN takes; ``admin_get`` reaches it)."""

    def __init__(self, root: Path, *, admin_socket: bool = False) -> None:
        self.root = root
        self.binary = require_binary("caddy")
        self.admin_port = free_port()
        self.http_port = free_port()
        self.https_port = free_port()  # for custom domains (SLIPWAY_HTTPS_PORT)
        self.admin_socket: Path | None = None
        if admin_socket:
            # A short path (a socket's is at most 107 bytes), in a 0700 directory.
            self.admin_socket = Path(tempfile.mkdtemp(prefix="slw-caddy-")) / "admin.sock"
            self.admin_url = f"unix/{self.admin_socket}"
            self.admin_listen = self.admin_url
        else:
            self.admin_url = f"http://127.0.0.1:{self.admin_port}"
            self.admin_listen = f"127.0.0.1:{self.admin_port}"
        self.log = root / "caddy.log"
        self.process: subprocess.Popen | None = None

    def admin_get(self, path: str) -> httpx.Response:
        """GET ``path`` of the admin API, over its socket if it has one (Caddy wants an
        empty Host there)."""
        if self.admin_socket is None:
            return httpx.get(f"{self.admin_url}{path}", timeout=5)
        transport = httpx.HTTPTransport(uds=str(self.admin_socket))
        with httpx.Client(transport=transport, timeout=5) as client:
            return client.get(f"http://caddy{path}", headers={"Host": ""})

    def start(self) -> None:
        """Start with an empty config: only the admin endpoint, no HTTP server."""
        config = self.root / "initial.json"
        config.write_text(json.dumps({"admin": {"listen": self.admin_listen}}))
        if self.admin_socket is not None:  # again after a restart
            self.admin_socket.parent.mkdir(mode=0o700, exist_ok=True)
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
                umask=0o077 if self.admin_socket else -1,  # a socket only root opens
            )
        wait_until_answers(
            f"{self.admin_url}/config/",
            "caddy",
            self.process,
            self.log,
            get=lambda: self.admin_get("/config/"),
        )

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None
        if self.admin_socket is not None:
            shutil.rmtree(self.admin_socket.parent, ignore_errors=True)

    def restart(self) -> None:
        """Kill and start again: Caddy comes back with the empty initial config."""
        self.stop()
        self.start()


@contextlib.contextmanager
def running_caddy(root: Path, *, admin_socket: bool = False) -> Iterator[CaddyProcess]:
    """A started ``CaddyProcess`` under ``root``, stopped on the way out."""
    process = CaddyProcess(root, admin_socket=admin_socket)
    process.start()
    try:
        yield process
    finally:
        process.stop()


class AgentProcess:
    """One agent with its own data dir, sharing the session's Caddy and registry."""

    def __init__(self, root: Path, caddy_admin: str, http_port: int, **settings: Any) -> None:
        self.root = root
        self.http_port = http_port
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        # The agent starts its route DNS responder here (UDP; a free TCP port is free
        # enough). It outlives the agent on purpose: only stop_route_dns() ends it.
        self.route_dns = f"127.0.0.1:{free_port()}"
        self.env = {
            **os.environ,
            "SLIPWAY_CONFIG": str(root / "slipway.yaml"),
            "SLIPWAY_DATA_DIR": str(root / "data"),
            "SLIPWAY_CONFIG_DIR": str(root / "conf"),
            "SLIPWAY_CREDENTIALS_FILE": str(root / "user-credentials"),
            "SLIPWAY_LISTEN_PORT": str(self.port),
            "SLIPWAY_CADDY_ADMIN": caddy_admin,
            "SLIPWAY_HTTP_PORT": str(http_port),
            "SLIPWAY_DRAIN_SECONDS": "1",
            "SLIPWAY_SETTLE_SECONDS": "2",
            "SLIPWAY_RECONCILE_INTERVAL": "1",
            "SLIPWAY_HEALTH_DEADLINE": "30",
            "SLIPWAY_ROUTE_DNS": self.route_dns,
            "SLIPWAY_INSTANCE_NETWORK": worker_network(),
            **{f"SLIPWAY_{k.upper()}": str(v) for k, v in settings.items()},
        }
        self.proc: subprocess.Popen | None = None

    @property
    def credentials_file(self) -> Path:
        return self.root / "conf" / "credentials"

    def start(self) -> AgentProcess:
        """Start the agent and wait for its /healthz. Its port was free when picked; if
        another process (another test's agent or server) bound it since, the agent cannot
        and a /healthz there is not its own: it starts again on a new port."""
        for _ in range(3):
            self.log = open(self.root / "agent.log", "ab")  # noqa: SIM115 - lives with the process
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "slipway", "serve"],
                env=self.env,
                stdout=self.log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                wait_for(self._healthy, timeout=30, what="the agent's /healthz")
            except AssertionError:
                if "address already in use" not in self.log_text():
                    raise
            if self.proc.poll() is None and listens(self.proc.pid, self.port):
                return self
            self.kill()
            self.port = free_port()
            self.endpoint = f"http://127.0.0.1:{self.port}"
            self.env["SLIPWAY_LISTEN_PORT"] = str(self.port)
        raise AssertionError(f"the agent found no free port: {self.log_text()[-2000:]}")

    def cli(
        self, *args: str, stdin: str | None = None, ok: bool = True
    ) -> subprocess.CompletedProcess:
        """The real CLI (``python -m slipway``) against this agent, as its operator runs
        it; the finished process, asserted to succeed (``ok``) or to fail (not ``ok``)."""
        done = subprocess.run(
            [sys.executable, "-m", "slipway", *args],
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert (done.returncode == 0) == ok, done.stdout + done.stderr
        return done

    def _healthy(self) -> bool:
        if self.proc and self.proc.poll() is not None:
            raise AssertionError(f"agent exited: {self.log_text()[-2000:]}")
        return httpx.get(f"{self.endpoint}/healthz", timeout=1).status_code == 200

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)

    def stop_route_dns(self) -> None:
        """End the route DNS responder the agent started: the one serving its table.

        ``kill()`` leaves it running, as a real ``kill -9`` of the agent would; teardown
        calls this after it. The agent keeps no pid file: the responder is found by its
        command line, which names the table (``<data_dir>/routes.json``)."""
        table = Path(self.env["SLIPWAY_DATA_DIR"]) / "routes.json"
        for pid in _route_dns_pids(table):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while _route_dns_table(pid) is not None and time.monotonic() < deadline:
                time.sleep(0.02)

    def stop_children(self) -> None:
        """End what the agent started to outlive it: its route DNS responder and the
        HAProxy of its data plane (which holds ``http_port`` until it ends)."""
        self.stop_route_dns()
        stop_haproxy(self.root)

    def log_text(self) -> str:
        return (self.root / "agent.log").read_text(errors="replace")

    def credentials(self) -> tuple[str, str]:
        key_id, secret, _ = keys.read_credentials(self.credentials_file)
        return key_id, secret

    def client(
        self, validate: bool = True, key_id: str | None = None, secret: str | None = None
    ) -> Any:
        own_id, own_secret = self.credentials()
        key_id, secret = key_id or own_id, secret or own_secret
        return boto3.client(
            "apprunner",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            config=Config(parameter_validation=validate, retries={"max_attempts": 1}),
        )

    def containers(self) -> list:
        """The slipway containers, in any state, that publish on this agent's instance
        network: its own, not those of other agents on the host (which may remove theirs
        while this lists them)."""
        network = ipaddress.ip_network(self.env["SLIPWAY_INSTANCE_NETWORK"])
        return [
            c
            for c in docker.from_env().containers.list(
                all=True, filters={"label": f"{LABEL_MANAGED}=true"}, ignore_removed=True
            )
            if any(
                ipaddress.ip_address(b["HostIp"]) in network
                for bindings in (c.attrs["HostConfig"].get("PortBindings") or {}).values()
                for b in bindings or ()
                if b.get("HostIp")
            )
        ]

    def metric(self, name: str, **labels: str) -> float:
        """One sample of the agent's ``/metrics`` (0 when it has none), labels in any order."""
        wanted = sorted(f'{k}="{v}"' for k, v in labels.items())
        for line in httpx.get(f"{self.endpoint}/metrics", timeout=10).text.splitlines():
            sample, _, number = line.rpartition(" ")
            metric, _, rest = sample.partition("{")
            if metric == name and sorted(filter(None, rest.rstrip("}").split(","))) == wanted:
                return float(number)
        return 0.0

    def access_log_read(self) -> None:
        """Wait until the agent's metrics have read Caddy's access log past this moment: a
        request for a host no service has, then the collector's line count moves on."""
        lines = self.metric("slipway_access_log_lines_total")
        self.get(f"nobody-{uuid.uuid4().hex[:8]}")
        wait_for(
            lambda: self.metric("slipway_access_log_lines_total") > lines,
            20,
            "the access log to be read past a request of its own",
        )

    def get(self, service_name: str, path: str = "/") -> httpx.Response:
        """A request through Caddy, the way a user reaches the service."""
        return httpx.get(
            f"http://127.0.0.1:{self.http_port}{path}",
            headers={"Host": f"{service_name}.localhost:{self.http_port}"},
            timeout=10,
        )


def _route_dns_table(pid: int) -> Path | None:
    """The table a live (not zombie) ``slipway.routing.routedns`` process ``pid`` serves."""
    proc = Path(f"/proc/{pid}")
    try:
        argv = (proc / "cmdline").read_bytes().split(b"\0")
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        if b"slipway.routing.routedns" not in argv or state == "Z":
            return None
        table = os.fsdecode(argv[argv.index(b"--table") + 1])
        return (proc / "cwd" / table).resolve()  # a relative path is the process's
    except (OSError, IndexError, ValueError):
        return None


def _route_dns_pids(table: Path) -> list[int]:
    """Pids of the route DNS responders serving ``table``."""
    wanted = table.resolve()
    pids = (int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit())
    return [pid for pid in pids if _route_dns_table(pid) == wanted]


def haproxy_pids(under: Path) -> list[int]:
    """Live HAProxy processes whose config lies under ``under`` (an agent's root): the
    HAProxy of ``data_plane: haproxy`` outlives its agent on purpose, as the route DNS
    responder does."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state == "Z" or b"-f" not in argv or Path(os.fsdecode(argv[0])).name != "haproxy":
            continue
        config = Path(os.fsdecode(argv[argv.index(b"-f") + 1]))
        if config.is_relative_to(under):
            pids.append(int(entry.name))
    return pids


def stop_haproxy(under: Path) -> None:
    """End the HAProxy processes ``haproxy_pids`` finds (after their agent ended), and
    wait until they have: their port is free for the next agent."""
    pids = haproxy_pids(under)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not set(pids) & set(haproxy_pids(under)), 10, "HAProxy to end")


def image_source(
    image: str,
    *,
    port: str | None = "8080",
    kind: str = "ECR",
    auto: bool | None = False,
    **config: object,
) -> dict[str, Any]:
    """An image service's ``SourceConfiguration`` as boto3 takes it. ``port`` (None: no
    Port, the API's default) and ``config`` (``RuntimeEnvironmentVariables``,
    ``StartCommand``...) make its ``ImageConfiguration``; ``auto`` is
    ``AutoDeploymentsEnabled`` (None: left out)."""
    configuration = ({"Port": port} if port is not None else {}) | config
    repository: dict[str, Any] = {"ImageIdentifier": image, "ImageRepositoryType": kind}
    if configuration:
        repository["ImageConfiguration"] = configuration
    source: dict[str, Any] = {"ImageRepository": repository}
    if auto is not None:
        source["AutoDeploymentsEnabled"] = auto
    return source


def code_source(
    url: str, branch: str = "main", *, auto: bool | None = False, **extra: object
) -> dict[str, Any]:
    """A code service's ``SourceConfiguration`` as boto3 takes it: ``branch`` of the git
    repository at ``url``, built as its ``apprunner.yaml`` says; ``extra`` adds
    ``CodeRepository`` members (``SourceDirectory``...); ``auto`` as in ``image_source``."""
    source: dict[str, Any] = {
        "CodeRepository": {
            "RepositoryUrl": url,
            "SourceCodeVersion": {"Type": "BRANCH", "Value": branch},
            "CodeConfiguration": {"ConfigurationSource": "REPOSITORY"},
            **extra,
        }
    }
    if auto is not None:
        source["AutoDeploymentsEnabled"] = auto
    return source


def wait_status(client: Any, arn: str, wanted: str, timeout: float = 90) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        service = client.describe_service(ServiceArn=arn)["Service"]
        if service["Status"] != "OPERATION_IN_PROGRESS" and service["Status"] != wanted:
            raise AssertionError(f"service went {service['Status']}, wanted {wanted}")
        return service if service["Status"] == wanted else None

    return wait_for(check, timeout, f"service status {wanted}")


def operations(client: Any, arn: str) -> list[dict[str, Any]]:
    """All of the service's operations, every page (newest first)."""
    ops: list[dict[str, Any]] = []
    params: dict[str, Any] = {"ServiceArn": arn}
    while True:
        page = client.list_operations(**params)
        ops += page["OperationSummaryList"]
        if not page.get("NextToken"):
            return ops
        params["NextToken"] = page["NextToken"]


def aws_cli(
    agent: Any, *args: str, profile: str = "slipway", credentials: Path | None = None
) -> subprocess.CompletedProcess:
    """``aws apprunner ARGS`` (the AWS CLI of this venv) against ``agent``, JSON out,
    with ``profile`` of the agent's credentials file (or of ``credentials``)."""
    return subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "aws"), "apprunner", *args,
         "--endpoint-url", agent.endpoint, "--profile", profile, "--region", "us-east-1",
         "--output", "json"],
        env={
            **os.environ,
            "AWS_SHARED_CREDENTIALS_FILE": str(credentials or agent.credentials_file),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip


def aws_json(agent: Any, *args: str) -> dict[str, Any]:
    """``aws_cli`` asserted to succeed: its answer."""
    done = aws_cli(agent, *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def expect_error(call: Callable[[], Any], code: str, *words: str) -> str:
    """``call`` refused by the API with error ``code`` and a message naming ``words``;
    the message."""
    with pytest.raises(ClientError) as info:
        call()
    error = info.value.response["Error"]
    assert error["Code"] == code, error
    for word in words:
        assert word in error["Message"], error["Message"]
    return error["Message"]


def operation_end(client: Any, arn: str, operation_id: str, timeout: float = 300) -> dict[str, Any]:
    """Wait until the operation is no longer PENDING or IN_PROGRESS; the operation."""

    def ended() -> dict[str, Any] | None:
        op = next(o for o in operations(client, arn) if o["Id"] == operation_id)
        return None if op["Status"] in ("PENDING", "IN_PROGRESS") else op

    return wait_for(ended, timeout, f"operation {operation_id} to end")


class Load:
    """``workers`` clients, each asking ``path`` (by default ``/slow?ms=slow_ms``) through
    the router one after another until stopped, ``pause`` seconds apart. Every answer is
    kept as (status, who answered): the X-Instance header, or with ``by="body"`` the
    answer's body (the example app's /env/APP_VERSION, to count answers by revision);
    ``times`` holds each answer's ``time.time()`` in the same order."""

    def __init__(
        self,
        agent,
        service: str,
        workers: int = 3,
        slow_ms: int = 0,
        *,
        path: str | None = None,
        by: str = "instance",
        pause: float = 0.0,
    ) -> None:
        self.url = f"http://127.0.0.1:{agent.http_port}{path or f'/slow?ms={slow_ms}'}"
        self.host = f"{service}.localhost:{agent.http_port}"
        self.by, self.pause = by, pause
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.answers: list[tuple[int, str]] = []  # (status, X-Instance or body)
        self.times: list[float] = []
        self.errors: list[str] = []
        self.threads = [threading.Thread(target=self._run) for _ in range(workers)]

    def _run(self) -> None:
        with httpx.Client(headers={"Host": self.host}, timeout=30) as client:
            while not self.stop.is_set():
                try:
                    r = client.get(self.url)
                    who = r.text.strip() if self.by == "body" else r.headers.get("X-Instance", "")
                    with self.lock:
                        self.answers.append((r.status_code, who))
                        self.times.append(time.time())
                except httpx.HTTPError as exc:
                    with self.lock:
                        self.errors.append(repr(exc))
                if self.pause:
                    time.sleep(self.pause)

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)

    def instances_since(self, start: int) -> set[str]:
        with self.lock:
            return {inst for _, inst in self.answers[start:]}

    def between(self, start: float, end: float) -> Counter:
        """Who answered how often from ``start`` to ``end`` (``time.time()`` values)."""
        with self.lock:
            return Counter(
                who
                for when, (_, who) in zip(self.times, self.answers, strict=True)
                if start <= when < end
            )

    def failed(self) -> list[tuple[int, str]]:
        """The answers that were not 200."""
        with self.lock:
            return [a for a in self.answers if a[0] != 200]


def service_containers(service_id: str) -> list:
    """The service's containers in any state."""
    return docker.from_env().containers.list(
        all=True, filters={"label": f"{LABEL_SERVICE_ID}={service_id}"}
    )


def live_containers(service_id: str) -> list:
    return docker.from_env().containers.list(
        filters={"label": f"{LABEL_SERVICE_ID}={service_id}", "status": "running"}
    )


def scaled_service(client: Any, name: str, image: str, **scaling: int) -> dict[str, Any]:
    """The example app RUNNING as image service ``name`` with an auto scaling
    configuration of its own (``scaling``: MaxConcurrency, MinSize, MaxSize), small
    instances (256 CPU units, 512 MB) and an HTTP health check every second."""
    asc = client.create_auto_scaling_configuration(AutoScalingConfigurationName=name, **scaling)[
        "AutoScalingConfiguration"
    ]
    arn = client.create_service(
        ServiceName=name,
        SourceConfiguration=image_source(image),
        InstanceConfiguration={"Cpu": "256", "Memory": "512"},
        HealthCheckConfiguration={"Protocol": "HTTP", "Path": "/health", "Interval": 1},
        AutoScalingConfigurationArn=asc["AutoScalingConfigurationArn"],
    )["Service"]["ServiceArn"]
    return wait_status(client, arn, "RUNNING")


def curl_https(agent: Any, ca_root: Path, host: str, path: str = "/") -> str:
    """What ``host`` answers over HTTPS on the agent's Caddy, its certificate checked
    against ``ca_root`` (curl: the name is the one asked for, whatever it resolves to)."""
    port = agent.caddy.https_port
    done = subprocess.run(
        [
            "curl", "--silent", "--show-error", "--fail", "--max-time", "10",
            "--cacert", str(ca_root),
            "--resolve", f"{host}:{port}:127.0.0.1",
            f"https://{host}:{port}{path}",
        ],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@contextlib.contextmanager
def running_agent(root: Path, caddy: CaddyProcess, **settings: Any) -> Any:
    """An agent on ``caddy``, started; on the way out it is killed with what it started
    to outlive it, and its services' containers and networks are removed."""
    process = AgentProcess(root, caddy.admin_url, caddy.http_port, **settings)
    process.caddy = caddy
    try:
        process.start()
    except BaseException:
        process.kill()
        process.stop_children()
        raise
    try:
        yield process
    finally:
        service_ids = []
        if process.proc and process.proc.poll() is None:
            client = process.client()
            service_ids = [s["ServiceId"] for s in client.list_services()["ServiceSummaryList"]]
        process.kill()
        process.stop_children()
        engine = docker.from_env()
        for service_id in service_ids:
            for container in engine.containers.list(
                all=True, filters={"label": f"{LABEL_SERVICE_ID}={service_id}"}
            ):
                container.remove(force=True)
            with contextlib.suppress(docker.errors.NotFound):  # its network goes with them
                engine.networks.get(network_name(service_id)).remove()
