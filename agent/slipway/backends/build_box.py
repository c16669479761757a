"""The box a build runs in: memory, CPU and processes of its steps, and their disk writes.

The classic builder runs each ``RUN`` step in a container of its own, and its ``/build``
call takes ``cgroupparent``. Each build gets a cgroup parent of its own (cgroup v1,
Docker's cgroupfs driver, as on this host): ``/sys/fs/cgroup/<controller>/slipway-builds/
<name>``, holding

- ``memory.limit_in_bytes`` (and the same for memory+swap): a step past it is killed by
  the kernel (exit 137) and the parent's ``memory.max_usage_in_bytes`` at the limit
  says why (the step's own cgroup, where the OOM is counted, is gone with its container);
- ``pids.max``: forks past it fail. ``pids.events`` counts the failure in the step's
  cgroup only, so ``pids.peak`` reaching ``pids.max`` is the signal here;
- ``cpu.cfs_quota_us``: the whole build gets at most ``cpus`` cores; and the parent of
  all builds weighs ``BUILDS_CPU_SHARES``, so under contention instances come first.

Where no such parent can be made (not root, cgroup v2), the step containers get memory
and CPU through the build's own parameters instead, and processes are not limited.

Disk: overlay2 on this host has no quota for a build step (``--storage-opt size`` needs
xfs with pquota and the classic builder does not pass it). The step's writable layer,
the container's ``UpperDir``, is measured while it runs (``layer_bytes``), and the
builder stops the build past the limit: bounded by the limit plus what a step writes
between two looks.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidRequest

CGROUP_ROOT = Path("/sys/fs/cgroup")
PARENT = "slipway-builds"
_CONTROLLERS = ("memory", "pids", "cpu")
_PERIOD_US = 100_000
MB = 1024 * 1024
# All builds together weigh a quarter of Docker's containers (1024) when the CPU is
# contended: a build waits for the instances serving requests, not the other way round.
BUILDS_CPU_SHARES = 256


@dataclass(frozen=True)
class BuildLimits:
    """What one build may use; each field is a setting (``build_*``, ``image_max_mb``).
    Defaults fit a 2-core host running two builds (``build_concurrency``)."""

    memory_mb: int = 2048  # the steps' memory; a step past it is killed
    cpus: float = 1.0  # cores the build's steps share
    pids_limit: int = 1024  # processes and threads; reaching it stops the build
    disk_max_mb: int = 10240  # what the build's steps write into their layers
    context_max_mb: int = 500  # the checked-out source sent to Docker
    image_max_mb: int = 4096  # the image made, base image included

    def check(self) -> None:
        """Refuse settings that would not confine a build, naming the setting."""
        minimum = {
            "build_memory_mb": (self.memory_mb, 64),
            "build_pids_limit": (self.pids_limit, 16),
            "build_disk_max_mb": (self.disk_max_mb, 1),
            "build_context_max_mb": (self.context_max_mb, 1),
            "image_max_mb": (self.image_max_mb, 1),
        }
        for setting, (value, least) in minimum.items():
            if value < least:
                raise InvalidRequest(f"{setting} must be {least} or more, not {value}")
        if not 0.01 <= self.cpus <= (os.cpu_count() or 1) * 4:
            raise InvalidRequest(
                f"build_cpus must be between 0.01 and the host's cores, not {self.cpus}"
            )


class BuildBox:
    """One build's cgroup parent: made on entry, read while the build runs, removed on exit."""

    def __init__(self, limits: BuildLimits, root: Path = CGROUP_ROOT) -> None:
        self.limits = limits
        # The agent's pid in the name tells a box of a killed agent from a live one's.
        self.name = f"{PARENT}/{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._dirs = {c: root / c / self.name for c in _CONTROLLERS}
        self.boxed = False  # the cgroup parent exists and holds the limits

    def __enter__(self) -> BuildBox:
        self._remove_stale()
        try:
            for controller, path in self._dirs.items():
                path.mkdir(parents=True, exist_ok=True)
                if controller == "memory":
                    limit = str(self.limits.memory_mb * MB)
                    (path / "memory.limit_in_bytes").write_text(limit)
                    swap = path / "memory.memsw.limit_in_bytes"
                    if swap.exists():  # no swap either
                        swap.write_text(limit)
                elif controller == "pids":
                    (path / "pids.max").write_text(str(self.limits.pids_limit))
                else:
                    (path.parent / "cpu.shares").write_text(str(BUILDS_CPU_SHARES))
                    (path / "cpu.cfs_period_us").write_text(str(_PERIOD_US))
                    quota = int(self.limits.cpus * _PERIOD_US)
                    (path / "cpu.cfs_quota_us").write_text(str(quota))
            self.boxed = True
        except OSError:
            self._remove(wait=0)
        return self

    def __exit__(self, *exc: object) -> None:
        self._remove()

    def _remove_stale(self) -> None:
        """Remove the boxes of agents killed mid-build (their pid is gone); a box in use
        still has step cgroups below it, and rmdir refuses it anyway."""
        for path in self._dirs.values():
            with contextlib.suppress(OSError):
                for stale in path.parent.iterdir():
                    pid = stale.name.partition("-")[0]
                    if stale.is_dir() and pid.isdigit() and not Path(f"/proc/{pid}").exists():
                        with contextlib.suppress(OSError):
                            stale.rmdir()

    def _remove(self, wait: float = 10.0) -> None:
        """Remove the parent once Docker has removed the step cgroups below it (a
        cancelled step's container goes a moment after the build's stream ends)."""
        deadline = time.monotonic() + wait
        for path in self._dirs.values():
            while path.exists():
                try:
                    path.rmdir()
                except OSError:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.1)

    def build_params(self) -> dict[str, str | int]:
        """The ``/build`` query parameters that put each step in this box."""
        quota = {"cpuperiod": _PERIOD_US, "cpuquota": int(self.limits.cpus * _PERIOD_US)}
        if self.boxed:
            return {"cgroupparent": "/" + self.name, **quota}
        memory = self.limits.memory_mb * MB
        return {"memory": memory, "memswap": memory, **quota}

    def _read(self, controller: str, name: str) -> int:
        try:
            return int((self._dirs[controller] / name).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return 0

    def pids_reached(self) -> bool:
        """The build's processes reached ``pids_limit`` (forks beyond it failed)."""
        if not self.boxed:
            return False
        peak = self._read("pids", "pids.peak") or self._read("pids", "pids.current")
        return peak >= self.limits.pids_limit

    def memory_reached(self) -> bool:
        """The build's memory reached its limit at some point (the kernel had to reclaim or
        kill); with a step killed (exit 137) it means the memory limit killed it."""
        # The OOM is counted in the step's own cgroup, gone with its container; the
        # parent keeps its peak, at the limit (failcnt stays 0 here, kernel 6.18).
        if not self.boxed:
            return False
        peak = self._read("memory", "memory.max_usage_in_bytes")
        return peak >= self.limits.memory_mb * MB - MB or self._read("memory", "memory.failcnt") > 0


def layer_bytes(upper_dir: str | None, stop_at: int) -> int:
    """Bytes allocated in a step's writable layer (``UpperDir``), counted up to
    ``stop_at``: the walk ends once the limit is passed, whatever else is there."""
    if not upper_dir:
        return 0
    total = 0
    for top, dirs, files in os.walk(upper_dir):
        for name in files + dirs:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(top, name)).st_blocks * 512
        if total > stop_at:
            break
    return total
