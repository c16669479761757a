"""A build's limits, watched while it runs: what each one means and how its failure reads.

The box itself (cgroup parent, disk measurement) is ``backends/build_box.py``; the
builder (``builder.py``) asks this module, between the chunks of the build's output,
whether a limit was crossed, and turns a failed step into the limit that killed it.
Every failure names its limit and the setting that sets it, in the deployment log as a
``[Build] build stopped: …`` line and in the error the deployment ends with.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from pathlib import Path

from ..backends.build_box import MB, BuildBox, BuildLimits, layer_bytes
from ..backends.docker_builds import DockerBuilds
from .errors import BuildFailed, BuildLimitReached
from .progress import Progress

DISK_LOOK_SECONDS = 0.5  # how often a running step's writable layer is measured
_KILLED = re.compile(r"(non-zero code: |exit code )137\b")  # SIGKILL, as the OOM killer sends


def stopped(
    what: str, setting: str, progress: Progress | None, log: Callable[[str], None]
) -> BuildLimitReached:
    """The error of a build stopped by a limit, its ``[Build]`` line logged."""
    log(f"[Build] build stopped: {what} (setting {setting})")
    step = progress.step if progress else None
    during = f" during {step.command!r}" if step else ""
    output = "\n".join(progress.tail) if progress else ""
    return BuildLimitReached(
        f"build stopped: {what} (setting {setting}){during}\nlast output:\n{output}",
        setting=setting,
        command=step.command if step else None,
        output=progress.tail if progress else (),
    )


def check_context(source_root: Path, limits: BuildLimits, log: Callable[[str], None]) -> None:
    """Refuse a source tree (without .git) larger than ``context_max_mb`` before it is
    copied or sent; the walk stops as soon as it is over."""
    limit = limits.context_max_mb * MB
    total = 0
    for top, dirs, files in os.walk(source_root):
        dirs[:] = [d for d in dirs if d != ".git"]
        for name in files:
            try:
                total += os.lstat(os.path.join(top, name)).st_size
            except OSError:
                continue
            if total > limit:
                what = f"build context over its limit of {limits.context_max_mb} MB"
                log(f"[Build] build refused: {what} (setting build_context_max_mb)")
                raise BuildLimitReached(
                    f"build refused: {what} (setting build_context_max_mb)",
                    setting="build_context_max_mb",
                )


class BuildWatch:
    """Looks at one build's box while it runs: processes and the steps' disk writes."""

    def __init__(self, box: BuildBox, docker: DockerBuilds, log: Callable[[str], None]) -> None:
        self.box = box
        self.limits = box.limits
        self.docker = docker
        self.log = log
        self._container: str | None = None
        self._upper: str | None = None
        self._current = 0  # bytes written by the running step
        self._committed = 0  # bytes written by the steps before it
        self._next_look = 0.0

    def look(self, progress: Progress) -> BuildLimitReached | None:
        """A limit the build has crossed, if any; the builder then stops the build."""
        if self.box.pids_reached():
            what = f"process limit {self.limits.pids_limit} reached"
            return stopped(what, "build_pids_limit", progress, self.log)
        now = time.monotonic()
        if now < self._next_look:
            return None
        self._next_look = now + DISK_LOOK_SECONDS
        if progress.container != self._container:
            self._committed += self._current
            self._container, self._current = progress.container, 0
            self._upper = self.docker.upper_dir(self._container) if self._container else None
        limit = self.limits.disk_max_mb * MB
        if self._upper:
            self._current = layer_bytes(self._upper, limit - self._committed)
        if self._committed + self._current > limit:
            what = f"disk limit {self.limits.disk_max_mb} MB reached"
            return stopped(what, "build_disk_max_mb", progress, self.log)
        return None

    def explain(self, error: BuildFailed, progress: Progress) -> BuildFailed:
        """The limit behind a failed step, if one was: a step killed (exit 137) when the
        memory limit was reached, or one whose forks failed at the process limit."""
        if _KILLED.search(str(error)) and self.box.memory_reached():
            what = f"memory limit {self.limits.memory_mb} MB reached"
            return stopped(what, "build_memory_mb", progress, self.log)
        if self.box.pids_reached():
            what = f"process limit {self.limits.pids_limit} reached"
            return stopped(what, "build_pids_limit", progress, self.log)
        return error

    def check_image(self, image: str) -> None:
        """Refuse an image larger than ``image_max_mb`` (the builder removes it)."""
        size = self.docker.image_size(image)
        if size > self.limits.image_max_mb * MB:
            what = f"image of {size // MB} MB over its limit of {self.limits.image_max_mb} MB"
            raise stopped(what, "image_max_mb", None, self.log)
