"""Image builds of code revisions with a managed runtime, on docker's classic builder.

Errors::

    SlipwayError
    └── BuildFailed        the revision does not build (terminal for that revision)
        └── BuildTimeout   it took longer than the build timeout and was stopped
    BackendError           docker itself failed or went away (passing; from errors.py)

Build context, a temp dir removed whatever happens::

    source/                        source_root, without .git
    .slipway/Dockerfile            the runtime's template, rendered by ``render``
    .slipway/ca-certificates.crt   the host CA bundle (TLS may be intercepted)
    .slipway/deps/                 copies of the dependency manifests that exist

The source sits in its own directory so ``COPY source/ ./`` never bakes ``.slipway``
into the image, and an app's own ``.dockerignore`` (one level down) has no say over the
context. Source files are hard-linked in when ``work_dir`` shares their filesystem.

Layer layout, in order (see ``render``):

1. ``FROM`` the base image of the resolved runtime version.
2. The CA bundle, with ``SSL_CERT_FILE``, ``PIP_CERT``, ``REQUESTS_CA_BUNDLE`` and
   ``NODE_EXTRA_CA_CERTS`` pointing at it. These stay in the image: the app calls out
   through the same network as its build.
3. The runtime's own ``ENV`` lines, then the build env as ``ARG`` with defaults: every
   build command sees it, the image's environment does not (App Runner's build env is
   for the build stage only). Values do show in ``docker history``: build env is not
   for secrets, in App Runner either.
4. The dependency layer: ``COPY .slipway/deps/ ./`` and one ``RUN`` per dependency
   install. Only the *leading* pre-build/build commands that match the runtime's
   dependency patterns go here, so no command ever changes order; and none do when a
   manifest points back into the source (``-e .``, ``file:`` deps, npm install
   scripts). A code-only change then reuses this layer from docker's cache. Should an
   install fail here anyway, the build runs once more with every command after the
   source copy, App Runner's own order, and that result stands.
5. ``COPY source/ ./``, then one ``RUN`` per remaining pre-build, build and post-build
   command, each ``/bin/sh -ec`` in exec form so the failing one is named.
6. ``ENV PORT`` (and run.network.env), ``EXPOSE``, and ``CMD /bin/sh -ec "<pre-run> &&
   exec <command>"``. Run env and secrets are never baked: the deployment passes them to
   the container. Last, one ``LABEL`` line (``slipway.build.*``): the API's ``labels=``
   would cost the classic builder a step per label.

Proxy variables reach the build as build args (docker's predefined proxy args: neither
in the image nor in the cache key); secrets never reach the build at all.

Timing: the service's images are listed while the build runs, so the prune after a
success (keep ``keep_images``) only removes. The build runs in a thread reading
``client.api.build``'s stream. On timeout the
builder shuts the streaming connection down: dockerd 20.10 then cancels the build,
kills the step's container and removes it (``forcerm``); the builder checks the
container is gone and force-removes it if not.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shutil
import socket
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests

from ..errors import BackendError, SlipwayError
from . import CodeConfig
from .runtimes import (
    EnginesConflict,
    Runtime,
    RuntimeUnavailable,
    dependencies_need_source,
    get_runtime,
    load_runtimes,
    resolve_for_source,
)

__all__ = [
    "LABEL_BUILD_REVISION",
    "LABEL_BUILD_RUNTIME",
    "LABEL_BUILD_SERVICE",
    "BuildFailed",
    "BuildResult",
    "BuildTimeout",
    "Builder",
    "image_repository",
    "image_tag",
]

# Image labels. Not slipway.service-id/slipway.revision: containers inherit image
# labels, and those names belong to the backends' instance labels.
LABEL_BUILD_SERVICE = "slipway.build.service"
LABEL_BUILD_REVISION = "slipway.build.revision"
LABEL_BUILD_RUNTIME = "slipway.build.runtime"

CA_PATH = "/usr/local/share/slipway/ca-certificates.crt"
CA_ENV = ("SSL_CERT_FILE", "PIP_CERT", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS")
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "FTP_PROXY", "ALL_PROXY")
TAIL_LINES = 10
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_STEP = re.compile(r"Step \d+/\d+ : (.*)")
_RUNNING = re.compile(r" ---> Running in ([0-9a-f]{12,64})")
_EXIT_CODE = re.compile(r"returned a non-zero code: (\d+)")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class BuildFailed(SlipwayError):
    """The revision did not build; ``command`` is the build command that failed, if one did."""

    def __init__(
        self, message: str, *, command: str | None = None, output: Sequence[str] = ()
    ) -> None:
        super().__init__(message)
        self.command = command
        self.output = tuple(output)
        self.before_source = False  # failed in the dependency layer (then retried)


class BuildTimeout(BuildFailed):
    """The build ran past the builder's timeout and was stopped."""


@dataclass(frozen=True)
class BuildResult:
    image: str  # slipway/<service>:<short sha>
    image_id: str
    runtime_version: str
    seconds: float


@dataclass(frozen=True)
class _Step:
    phase: str  # pre-build, build, post-build
    command: str
    before_source: bool


@dataclass(frozen=True)
class _Plan:
    dockerfile: str
    steps: dict[str, _Step]  # the RUN instruction, as the builder echoes it -> step

    @property
    def dependency_steps(self) -> int:
        return sum(step.before_source for step in self.steps.values())


def image_repository(service_name: str) -> str:
    """``slipway/<name>``: lowercased, with what a docker repository name refuses as ``-``."""
    name = re.sub(
        r"[^a-z0-9]+",
        lambda m: m[0] if re.fullmatch(r"[._]|__|-+", m[0]) else "-",
        service_name.lower(),
    ).strip("._-")
    return f"slipway/{name or 'service'}"


def image_tag(service_name: str, revision: str) -> str:
    short = re.sub(r"[^A-Za-z0-9_.-]", "", revision.removeprefix("sha256:"))[:7].lstrip(".-")
    return f"{image_repository(service_name)}:{short or 'latest'}"


def _run_line(command: str) -> str:
    # Exec form: the command reaches sh verbatim, whatever quotes or $ it holds.
    return "RUN " + json.dumps(["/bin/sh", "-ec", command])


def _quoted(value: str) -> str:
    """A double-quoted word for the Dockerfile lexer (ARG, LABEL): no $ expansion."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


def _fill(template: str, values: Mapping[str, str]) -> str:
    """Fill ``{{ name }}`` slots; a line holding only an empty slot disappears."""
    out: list[str] = []
    for line in template.splitlines():
        only = re.fullmatch(r"\s*\{\{\s*(\w+)\s*\}\}\s*", line)
        if only and not values[only[1]]:
            continue
        out.append(re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: values[m[1]], line))
    return "\n".join(out) + "\n"


def _link_or_copy(src: str, dst: str) -> None:
    """Hard-link source files into the context (cheap for big trees); copy across devices."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _created(created: str) -> float:
    """Seconds since the epoch; docker's RFC 3339 nanosecond strings don't sort as text."""
    match = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?", created)
    if not match:
        return 0.0
    seconds = datetime.fromisoformat(match[1]).replace(tzinfo=UTC).timestamp()
    return seconds + float("0" + (match[2] or ""))


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


class _StreamingBuild:
    """``client.api.build`` in a thread: its decoded chunks arrive on a queue."""

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
            stream = api.build(**kwargs)
        except Exception as exc:  # handed to the waiting thread, which translates it
            self.events.put(("error", exc))
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
            self.events.put(("error", exc))
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


class _Progress:
    """Follows the build output: logs it, remembers the step, its container and a tail."""

    def __init__(self, plan: _Plan, log: Callable[[str], None]) -> None:
        self.plan = plan
        self.log = log
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.step_text = ""
        self.step: _Step | None = None
        self.container: str | None = None
        self.image_id: str | None = None
        self._partial = ""
        self._cached_deps = 0

    def feed(self, chunk: Mapping[str, Any]) -> None:
        if "error" in chunk or "errorDetail" in chunk:
            self.flush()
            detail = chunk.get("errorDetail") or {}
            raise self.failure(str(detail.get("message") or chunk.get("error") or "unknown"))
        if "stream" in chunk:
            text = self._partial + str(chunk["stream"])
            *lines, self._partial = text.split("\n")
            for line in lines:
                self._line(line.rstrip("\r"))
        aux = chunk.get("aux")
        if isinstance(aux, Mapping) and aux.get("ID"):
            self.image_id = str(aux["ID"])
        if "status" in chunk and not chunk.get("progressDetail"):
            self._line(" ".join(str(chunk[k]) for k in ("status", "id") if chunk.get(k)))

    def flush(self) -> None:
        if self._partial:
            self._line(self._partial)
            self._partial = ""

    def _line(self, line: str) -> None:
        line = _ANSI.sub("", line)  # the classic builder paints a step's stderr red
        if not line.strip():
            return
        self.log(f"[Build] {line}")
        step = _STEP.fullmatch(line)
        if not line.startswith((" ---> ", "Removing intermediate container")):
            if step:  # the tail is the current step's own output
                self.tail.clear()
            self.tail.append(line)
        if step:
            self.step_text = step[1]
            self.step = self.plan.steps.get(step[1])
            self.container = None
            return
        running = _RUNNING.match(line)
        if running:
            self.container = running[1]
        elif line.startswith(" ---> Using cache") and self.step and self.step.before_source:
            self._cached_deps += 1
            if self._cached_deps == self.plan.dependency_steps:
                self.log("[AppRunner] Dependency layer reused from the build cache")
        elif line.startswith("Removing intermediate container"):
            self.container = None

    def failure(self, message: str) -> BuildFailed:
        self.log(f"[Build] {message}")
        self.tail.append(message)
        output = "\n".join(self.tail)
        if self.step is not None:
            code = _EXIT_CODE.search(message)
            status = f"exit code {code[1]}" if code else message
            error = BuildFailed(
                f"{self.step.phase} command failed ({status}): {self.step.command}\n"
                f"last output:\n{output}",
                command=self.step.command,
                output=self.tail,
            )
            error.before_source = self.step.before_source
            return error
        hint = ""
        if self.step_text.startswith("FROM"):
            hint = " (is the base image on this host? scripts/build-base-images makes it)"
        return BuildFailed(
            f"build step failed: {self.step_text or 'build'}: {message}{hint}\n"
            f"last output:\n{output}",
            output=self.tail,
        )


def _proxy_env_from(environ: Mapping[str, str]) -> dict[str, str]:
    names = [*PROXY_VARS, *(name.lower() for name in PROXY_VARS)]
    return {name: environ[name] for name in names if environ.get(name)}


class Builder:
    """Builds ``slipway/<service>:<short sha>`` images from source trees and CodeConfig."""

    def __init__(
        self,
        client: docker.DockerClient | None = None,
        runtimes: dict[str, Runtime] | None = None,
        *,
        ca_bundle: Path | None = Path("/etc/ssl/certs/ca-certificates.crt"),
        timeout: float = 1200,
        keep_images: int = 5,
        proxy_env: Mapping[str, str] | None = None,
        work_dir: Path | None = None,
    ) -> None:
        """``work_dir`` holds the build contexts (default: the system temp dir); on the
        checkouts' filesystem the source is hard-linked in rather than copied."""
        self._client = client
        self.work_dir = work_dir
        self.runtimes = load_runtimes() if runtimes is None else runtimes
        self.ca_bundle = ca_bundle if ca_bundle is not None and ca_bundle.is_file() else None
        self.timeout = timeout
        self.keep_images = keep_images
        self.proxy_env = dict(_proxy_env_from(os.environ) if proxy_env is None else proxy_env)

    @property
    def client(self) -> docker.DockerClient:
        # Made on first use: docker.from_env() asks the daemon for its API version.
        if self._client is None:
            try:
                self._client = docker.from_env()
            except docker.errors.DockerException as exc:
                raise BackendError(f"docker does not answer: {exc}") from exc
        return self._client

    # --- the Dockerfile ---------------------------------------------------------------

    def render(
        self,
        runtime: Runtime,
        version: str,
        base_image: str,
        config: CodeConfig,
        manifests: Sequence[str] = (),
        *,
        dependency_layer: bool = True,
        labels: Mapping[str, str] | None = None,
    ) -> str:
        """The Dockerfile for ``config`` on ``runtime`` ``version`` (pure: no docker, no files).

        ``manifests`` are the dependency manifests present in the source; with
        ``dependency_layer`` False every command runs after the source copy. ``labels``
        end the file as one LABEL line.
        """
        return self._plan(
            runtime, version, base_image, config, manifests, dependency_layer, labels or {}
        ).dockerfile

    def _plan(
        self,
        runtime: Runtime,
        version: str,
        base_image: str,
        config: CodeConfig,
        manifests: Sequence[str],
        dependency_layer: bool,
        labels: Mapping[str, str],
    ) -> _Plan:
        commands = [("pre-build", c) for c in config.pre_build]
        commands += [("build", c) for c in config.build]
        early = 0
        if dependency_layer:
            while early < len(commands) and runtime.is_dependency_command(commands[early][1]):
                early += 1
        steps: dict[str, _Step] = {}
        dependencies: list[str] = []
        if early:
            if manifests:
                dependencies.append("COPY .slipway/deps/ ./")
            for phase, command in commands[:early]:
                steps[_run_line(command)] = _Step(phase, command, before_source=True)
                dependencies.append(_run_line(command))
        build: list[str] = []
        rest = commands[early:] + [("post-build", c) for c in config.post_build]
        for phase, command in rest:
            steps.setdefault(_run_line(command), _Step(phase, command, before_source=False))
            build.append(_run_line(command))

        build_env: list[str] = []
        for name, value in config.build_env.items():
            if not _ENV_NAME.fullmatch(name):
                raise BuildFailed(f"build env name {name!r} is not a valid variable name")
            if "\n" in value or "\r" in value:
                raise BuildFailed(f"build env {name}: a value cannot hold a line break")
            build_env.append(f"ARG {name}={_quoted(value)}")

        certificates = ""
        if self.ca_bundle is not None:
            certificates = f"COPY .slipway/ca-certificates.crt {CA_PATH}\nENV " + " ".join(
                f"{name}={CA_PATH}" for name in CA_ENV
            )

        command = config.command or runtime.default_command
        if not command:
            raise BuildFailed(f"run.command is required for runtime {runtime.name}")
        port_env = [f"PORT={config.port}"]
        if config.port_env and config.port_env != "PORT":
            if not _ENV_NAME.fullmatch(config.port_env):
                raise BuildFailed(f"run.network.env {config.port_env!r} is not a variable name")
            port_env.append(f"{config.port_env}={config.port}")
        start = " && ".join([*config.pre_run, f"exec {command}"])
        run = [
            "ENV " + " ".join(port_env),
            f"EXPOSE {config.port}",
            "CMD " + json.dumps(["/bin/sh", "-ec", start]),
        ]
        if labels:
            # One LABEL line, last: the API's labels= costs the classic builder a step
            # (a container and a commit) per label.
            run.append("LABEL " + " ".join(f"{k}={_quoted(v)}" for k, v in labels.items()))
        dockerfile = _fill(
            runtime.template,
            {
                "base_image": base_image,
                "runtime_version": version,
                "certificates": certificates,
                "build_env": "\n".join(build_env),
                "dependencies": "\n".join(dependencies),
                "source": "COPY source/ ./",
                "build": "\n".join(build),
                "run": "\n".join(run),
            },
        )
        return _Plan(dockerfile, steps)

    # --- building ---------------------------------------------------------------------

    def build(
        self,
        service_name: str,
        source_root: Path,
        config: CodeConfig,
        revision: str,
        log: Callable[[str], None],
        *,
        nocache: bool = False,
    ) -> BuildResult:
        """Build ``source_root`` at ``revision`` into ``slipway/<service>:<short sha>``.

        Raises BuildFailed (a command failed, a bad runtime or version, engines
        conflict), BuildTimeout, or BackendError (docker failed).
        """
        started = time.monotonic()
        deadline = started + self.timeout
        tag = image_tag(service_name, revision)
        log(f"[AppRunner] Build started: {tag}, runtime {config.runtime}")
        runtime, version, base_image, manifests = self._resolve(source_root, config, log)
        log(f"[AppRunner] Runtime {runtime.name} {version} on {base_image}")
        texts = {name: (source_root / name).read_text(errors="replace") for name in manifests}
        reason = dependencies_need_source(texts)
        if reason:
            log(f"[AppRunner] Dependencies install after the source copy: {reason}")
        labels = {
            LABEL_BUILD_SERVICE: service_name,
            LABEL_BUILD_REVISION: revision,
            LABEL_BUILD_RUNTIME: f"{runtime.name} {version}",
        }
        plan = self._plan(runtime, version, base_image, config, manifests, reason is None, labels)
        if self.work_dir is not None:
            self.work_dir.mkdir(parents=True, exist_ok=True)
        # The prune after the build needs the service's images: list them while it runs.
        pool = ThreadPoolExecutor(1, thread_name_prefix="slipway-images")
        listing = pool.submit(self._images, service_name)
        pool.shutdown(wait=False)
        with tempfile.TemporaryDirectory(prefix="slipway-build-", dir=self.work_dir) as tmp:
            context = Path(tmp)
            self._prepare_context(context, source_root, manifests)
            try:
                image_id = self._build_once(context, plan, tag, log, deadline, nocache)
            except BuildFailed as exc:
                if not exc.before_source or isinstance(exc, BuildTimeout):
                    raise
                log(
                    "[AppRunner] A dependency install failed before the source copy; "
                    "building again with every command after it"
                )
                plan = self._plan(runtime, version, base_image, config, manifests, False, labels)
                image_id = self._build_once(context, plan, tag, log, deadline, nocache)
        seconds = time.monotonic() - started
        log(f"[AppRunner] Build finished in {seconds:.1f} s: {tag}")
        try:
            repository, listed = listing.result()
            # The new image is not in that listing; an older one may have lost its tag to it.
            older = [image for image in listed if tag not in (image.get("RepoTags") or [])]
            removed = self._remove_old(repository, older, max(0, self.keep_images - 1), (tag,))
        except BackendError as exc:
            log(f"[AppRunner] Could not remove old images: {exc}")
        else:
            if removed:
                log(f"[AppRunner] Removed old images: {', '.join(removed)}")
        return BuildResult(tag, image_id, version, seconds)

    def _resolve(
        self, source_root: Path, config: CodeConfig, log: Callable[[str], None]
    ) -> tuple[Runtime, str, str, list[str]]:
        """Runtime, exact version, base image and the manifests present; errors as BuildFailed."""
        if not source_root.is_dir():
            raise BuildFailed(f"source directory {source_root} does not exist")
        try:
            runtime = get_runtime(self.runtimes, config.runtime)
            manifests = [m for m in runtime.manifests if (source_root / m).is_file()]
            package_json = None
            if runtime.language == "nodejs" and "package.json" in manifests:
                try:
                    package_json = json.loads((source_root / "package.json").read_text())
                except ValueError as exc:
                    raise BuildFailed(f"package.json is not valid JSON: {exc}") from exc
                if not isinstance(package_json, dict):
                    raise BuildFailed("package.json must hold a JSON object")
            version, base_image = resolve_for_source(runtime, config.runtime_version, package_json)
        except (RuntimeUnavailable, EnginesConflict) as exc:
            log(f"[AppRunner] {exc.message}")
            raise BuildFailed(exc.message) from exc
        return runtime, version, base_image, manifests

    def _prepare_context(self, context: Path, source_root: Path, manifests: Sequence[str]) -> None:
        shutil.copytree(
            source_root,
            context / "source",
            symlinks=True,
            ignore=shutil.ignore_patterns(".git"),
            copy_function=_link_or_copy,
        )
        meta = context / ".slipway"
        (meta / "deps").mkdir(parents=True)
        # Real copies: a hard link to a file also under source/ would enter the tar as a
        # link entry, which hashes differently in the build cache.
        for name in manifests:
            shutil.copyfile(source_root / name, meta / "deps" / name)
        if self.ca_bundle is not None:
            shutil.copyfile(self.ca_bundle, meta / "ca-certificates.crt")

    def _build_once(
        self,
        context: Path,
        plan: _Plan,
        tag: str,
        log: Callable[[str], None],
        deadline: float,
        nocache: bool,
    ) -> str:
        (context / ".slipway" / "Dockerfile").write_text(plan.dockerfile)
        progress = _Progress(plan, log)
        build = _StreamingBuild(
            self.client.api,
            {
                "path": str(context),
                "dockerfile": ".slipway/Dockerfile",
                "tag": tag,
                "buildargs": dict(self.proxy_env),
                "rm": True,
                "forcerm": True,
                "nocache": nocache,
                "decode": True,
                "timeout": None,  # no socket timeout: a silent step may take minutes
            },
        )
        try:
            while True:
                try:
                    kind, item = build.events.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    raise self._stop(build, progress, log) from None
                if kind == "chunk":
                    progress.feed(item)
                elif kind == "end":
                    progress.flush()
                    break
                else:
                    raise self._translate(item, progress) from item
        finally:
            build.cancel(wait=10)
        if progress.image_id is None:
            try:
                progress.image_id = self.client.api.inspect_image(tag)["Id"]
            except docker.errors.DockerException as exc:
                raise BuildFailed(f"the build ended without an image: {exc}") from exc
        return progress.image_id

    def _stop(
        self, build: _StreamingBuild, progress: _Progress, log: Callable[[str], None]
    ) -> BuildTimeout:
        """Cancel a build past its deadline and make sure its step container is gone."""
        what = f" during {progress.step.command!r}" if progress.step else ""
        log(f"[AppRunner] Build timed out after {self.timeout:g} s{what}; stopping it")
        build.cancel(wait=10)
        if progress.container:
            self._remove_container(progress.container)
        output = "\n".join(progress.tail)
        return BuildTimeout(
            f"build timed out after {self.timeout:g} s{what} and was stopped\n"
            f"last output:\n{output}",
            command=progress.step.command if progress.step else None,
            output=progress.tail,
        )

    def _remove_container(self, container_id: str) -> None:
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

    @staticmethod
    def _translate(error: BaseException, progress: _Progress) -> SlipwayError:
        if isinstance(error, docker.errors.APIError):
            return progress.failure(f"docker refused the build: {error.explanation or error}")
        return BackendError(f"lost the connection to docker during the build: {error}")

    # --- images -----------------------------------------------------------------------

    def _images(self, service_name: str) -> tuple[str, list[dict[str, Any]]]:
        """The service's images as /images/json lists them (one call, no inspect each)."""
        repository = image_repository(service_name)
        try:
            return repository, self.client.api.images(name=repository)
        except docker.errors.DockerException as exc:
            raise BackendError(f"could not list images of {repository}: {exc}") from exc

    def _newest_first(self, images: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # /images/json gives whole seconds; only images sharing a second need inspecting.
        per_second = Counter(image.get("Created", 0) for image in images)

        def created(image: dict[str, Any]) -> float:
            second = image.get("Created", 0)
            return float(second) if per_second[second] == 1 else self._created(image)

        return sorted(images, key=created, reverse=True)

    def _created(self, image: dict[str, Any]) -> float:
        try:
            return _created(self.client.api.inspect_image(image["Id"])["Created"])
        except docker.errors.NotFound:
            return 0.0
        except docker.errors.DockerException as exc:
            raise BackendError(f"could not inspect image {image['Id']}: {exc}") from exc

    def prune(self, service_name: str, keep: Iterable[str] = ()) -> list[str]:
        """Remove all but the newest ``keep_images`` images of the service; never one named
        in ``keep`` (tags or ids) nor one a container still uses. Returns the removed tags."""
        repository, images = self._images(service_name)
        return self._remove_old(repository, images, self.keep_images, keep)

    def _remove_old(
        self, repository: str, images: list[dict[str, Any]], count: int, keep: Iterable[str]
    ) -> list[str]:
        """Remove the tags in ``repository`` of all but the newest ``count`` of ``images``."""
        if len(images) <= count:
            return []
        images = self._newest_first(images)
        keep = [k for k in keep if k]
        removed: list[str] = []
        for image in images[count:]:
            tags = image.get("RepoTags") or []
            ids = (image["Id"], image["Id"].removeprefix("sha256:"))
            if any(k in tags or (len(k) >= 12 and i.startswith(k)) for k in keep for i in ids):
                continue
            for tag in tags:
                if tag.rpartition(":")[0] != repository:
                    continue
                try:
                    self.client.api.remove_image(tag)
                except docker.errors.NotFound:
                    continue
                except docker.errors.APIError as exc:
                    if exc.status_code == 409:  # a container uses it
                        break
                    raise BackendError(f"could not remove image {tag}: {exc}") from exc
                removed.append(tag)
        return removed

    def remove_all(self, service_name: str) -> None:
        """Remove every image of the service (it is being deleted)."""
        repository, images = self._images(service_name)
        for image in images:
            for tag in image.get("RepoTags") or []:
                if tag.rpartition(":")[0] != repository:
                    continue
                try:
                    self.client.api.remove_image(tag, force=True)
                except docker.errors.NotFound:
                    pass
                except docker.errors.APIError as exc:
                    raise BackendError(f"could not remove image {tag}: {exc}") from exc
