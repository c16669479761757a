"""Image builds of code revisions with a managed runtime, on docker's classic builder.

Errors are in ``errors.py``; the Dockerfile and its layer layout in ``dockerfile.py``;
the reading of the builder's output in ``progress.py``; the docker calls in
``backends/docker_builds.py``. This module puts them together: resolve the runtime,
lay out the context, run the build against a deadline, prune old images.

Build context, a temp dir removed whatever happens::

    source/                        source_root, without .git
    .slipway/Dockerfile            the runtime's template, rendered by ``render``
    .slipway/ca-certificates.crt   the host CA bundle (TLS may be intercepted)
    .slipway/deps/                 copies of the dependency manifests that exist

The source sits in its own directory so ``COPY source/ ./`` never bakes ``.slipway``
into the image, and an app's own ``.dockerignore`` (one level down) has no say over the
context. Source files are hard-linked in when ``work_dir`` shares their filesystem.

Proxy variables reach the build as build args (docker's predefined proxy args: neither
in the image nor in the cache key); secrets never reach the build at all.

Limits (``limits.py``, ``backends/build_box.py``): the source tree is refused past
``context_max_mb`` before it is copied; the steps run in a box of memory, CPU and
processes, their disk writes are measured while they run, and the image is refused past
``image_max_mb``. Whichever is crossed stops the build and is named with its setting.

Timing: the service's images are listed while the build runs, so the prune after a
success (keep ``keep_images``) only removes. On timeout the builder cancels the build
(dockerd kills and removes the step's container) and makes sure that container is gone.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..backends.build_box import BuildBox, BuildLimits
from ..backends.docker_builds import DockerBuilds, DockerClient, StreamingBuild
from ..errors import BackendError, InvalidRequest
from . import CodeConfig
from .dockerfile import Plan, make_plan
from .errors import BuildFailed, BuildLimitReached, BuildTimeout
from .limits import DISK_LOOK_SECONDS, BuildWatch, check_context
from .progress import Progress
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
    "BuildResult",
    "Builder",
    "image_repository",
    "image_tag",
]

# Image labels. Not slipway.service-id/slipway.revision: containers inherit image
# labels, and those names belong to the backends' instance labels.
LABEL_BUILD_SERVICE = "slipway.build.service"
LABEL_BUILD_REVISION = "slipway.build.revision"
LABEL_BUILD_RUNTIME = "slipway.build.runtime"

PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "FTP_PROXY", "ALL_PROXY")


@dataclass(frozen=True)
class BuildResult:
    image: str  # slipway/<service>:<short sha>
    image_id: str
    runtime_version: str
    seconds: float


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


def _link_or_copy(src: str, dst: str) -> None:
    """Hard-link source files into the context (cheap for big trees); copy across devices."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _proxy_env_from(environ: Mapping[str, str]) -> dict[str, str]:
    names = [*PROXY_VARS, *(name.lower() for name in PROXY_VARS)]
    return {name: environ[name] for name in names if environ.get(name)}


class Builder:
    """Builds ``slipway/<service>:<short sha>`` images from source trees and CodeConfig."""

    def __init__(
        self,
        client: DockerClient | None = None,
        runtimes: dict[str, Runtime] | None = None,
        *,
        ca_bundle: Path | None = Path("/etc/ssl/certs/ca-certificates.crt"),
        timeout: float = 1200,
        keep_images: int = 5,
        proxy_env: Mapping[str, str] | None = None,
        work_dir: Path | None = None,
        network: Callable[[], str] | None = None,
        limits: BuildLimits | None = None,
    ) -> None:
        """``work_dir`` holds the build contexts (default: the system temp dir); on the
        checkouts' filesystem the source is hard-linked in rather than copied. ``client``
        is made from the environment on first use when not given. Builds run on the
        network ``network()`` names (the fenced build network), or Docker's default one.
        Nonsense limits are refused here, so the agent does not start with them."""
        if timeout <= 0:
            raise InvalidRequest(f"build_timeout must be more than 0 seconds, not {timeout:g}")
        self.limits = limits or BuildLimits()
        self.limits.check()
        self.docker = DockerBuilds(client, network)
        self.work_dir = work_dir
        self.runtimes = load_runtimes() if runtimes is None else runtimes
        self.ca_bundle = ca_bundle if ca_bundle is not None and ca_bundle.is_file() else None
        self.timeout = timeout
        self.keep_images = keep_images
        self.proxy_env = dict(_proxy_env_from(os.environ) if proxy_env is None else proxy_env)

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
    ) -> Plan:
        return make_plan(
            runtime,
            version,
            base_image,
            config,
            manifests,
            dependency_layer,
            labels,
            with_ca=self.ca_bundle is not None,
        )

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
        check_context(source_root, self.limits, log)
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
        with (
            tempfile.TemporaryDirectory(prefix="slipway-build-", dir=self.work_dir) as tmp,
            BuildBox(self.limits) as box,
        ):
            if not box.boxed:
                log("[AppRunner] No cgroup of its own for this build: processes unlimited")
            watch = BuildWatch(box, self.docker, log)
            context = Path(tmp)
            self._prepare_context(context, source_root, manifests)
            try:
                image_id = self._build_once(context, plan, tag, log, deadline, nocache, watch)
            except BuildFailed as exc:
                if not exc.before_source or isinstance(exc, BuildLimitReached):
                    raise
                log(
                    "[AppRunner] A dependency install failed before the source copy; "
                    "building again with every command after it"
                )
                plan = self._plan(runtime, version, base_image, config, manifests, False, labels)
                image_id = self._build_once(context, plan, tag, log, deadline, nocache, watch)
            try:
                watch.check_image(tag)
            except BuildLimitReached:
                self.docker.remove_image(tag, force=True)
                raise
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
        plan: Plan,
        tag: str,
        log: Callable[[str], None],
        deadline: float,
        nocache: bool,
        watch: BuildWatch,
    ) -> str:
        (context / ".slipway" / "Dockerfile").write_text(plan.dockerfile)
        progress = Progress(plan, log)
        build = self.docker.start(
            path=str(context),
            dockerfile=".slipway/Dockerfile",
            tag=tag,
            buildargs=dict(self.proxy_env),
            nocache=nocache,
            params=watch.box.build_params(),
        )
        try:
            while True:
                left = deadline - time.monotonic()
                try:
                    kind, item = build.events.get(timeout=max(0.0, min(left, DISK_LOOK_SECONDS)))
                except queue.Empty:
                    kind, item = "quiet", None
                if left <= 0:
                    raise self._stop(build, progress, log, None)
                crossed = watch.look(progress)
                if crossed is not None:
                    raise self._stop(build, progress, log, crossed)
                if kind == "chunk":
                    try:
                        progress.feed(item)
                    except BuildFailed as exc:
                        raise watch.explain(exc, progress) from exc
                elif kind == "end":
                    progress.flush()
                    break
                elif kind == "refused":
                    raise progress.failure(f"docker refused the build: {item}") from item
                elif kind == "error":
                    raise item
        finally:
            build.cancel(wait=10)
        if progress.image_id is None:
            try:
                progress.image_id = self.docker.image_id(tag)
            except BackendError as exc:
                raise BuildFailed(f"the build ended without an image: {exc}") from exc
        return progress.image_id

    def _stop(
        self,
        build: StreamingBuild,
        progress: Progress,
        log: Callable[[str], None],
        crossed: BuildLimitReached | None,
    ) -> BuildLimitReached:
        """Cancel a build that crossed a limit (``None``: its deadline) and make sure its
        step container is gone."""
        if crossed is None:
            what = f" during {progress.step.command!r}" if progress.step else ""
            limit = f"time limit {self.timeout:g} s reached"
            log(f"[Build] build stopped: {limit} (setting build_timeout)")
            output = "\n".join(progress.tail)
            crossed = BuildTimeout(
                f"build timed out after {self.timeout:g} s{what} and was stopped"
                f" (setting build_timeout)\nlast output:\n{output}",
                setting="build_timeout",
                command=progress.step.command if progress.step else None,
                output=progress.tail,
            )
        build.cancel(wait=10)
        if progress.container:
            self.docker.remove_build_container(progress.container)
        return crossed

    # --- images -----------------------------------------------------------------------

    def _images(self, service_name: str) -> tuple[str, list[dict[str, Any]]]:
        """The service's images as /images/json lists them (one call, no inspect each)."""
        repository = image_repository(service_name)
        return repository, self.docker.images(repository)

    def _newest_first(self, images: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # /images/json gives whole seconds; only images sharing a second need inspecting.
        per_second = Counter(image.get("Created", 0) for image in images)

        def created(image: dict[str, Any]) -> float:
            second = image.get("Created", 0)
            return float(second) if per_second[second] == 1 else self.docker.created(image["Id"])

        return sorted(images, key=created, reverse=True)

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
                outcome = self.docker.remove_image(tag)
                if outcome == "in use":  # a container uses it
                    break
                if outcome == "removed":
                    removed.append(tag)
        return removed

    def remove_all(self, service_name: str) -> None:
        """Remove every image of the service (it is being deleted)."""
        repository, images = self._images(service_name)
        for image in images:
            for tag in image.get("RepoTags") or []:
                if tag.rpartition(":")[0] != repository:
                    continue
                self.docker.remove_image(tag, force=True)
