"""What a deployment does differently for a worker service (``workers.py``): it has no
port to check, so a new instance is started once it has stayed up ``worker_up_seconds``;
and a single worker's old instance stops before the new one starts. Everything else
(the settle window, going live, stopping the old) is the web rollout's own."""

from __future__ import annotations

import time
from collections.abc import Callable

from ..backends import Backend, Instance
from ..errors import HealthCheckFailed
from .runner import Task, Wait

UP_POLL = 0.5  # seconds between looks at a starting worker instance


def stays_up(
    backend: Backend,
    inst: Instance,
    seconds: float,
    check: Callable[[], None],
    log_tail: Callable[[Instance], str],
) -> Task:
    """Wait until ``inst`` has run ``seconds`` without exiting; raise HealthCheckFailed
    (with its last log lines) if it exits or the engine restarts it before.
    ``check`` raises when the operation is cancelled."""
    begun = time.monotonic()
    while True:
        check()
        now = backend.get_instance(inst.id)
        elapsed = time.monotonic() - begun
        if (
            now is None
            or now.state not in ("running", "created")
            or (now.restart_count > inst.restart_count)
        ):
            code = f" with exit code {now.exit_code}" if now and now.exit_code else ""
            raise HealthCheckFailed(
                f"worker instance {inst.name} exited{code} {elapsed:.0f}s after it started;"
                f" a worker must keep running ({seconds:g}s to count as started)" + log_tail(inst)
            )
        if elapsed >= seconds:
            return
        yield Wait(min(UP_POLL, seconds - elapsed))


def stop_first(backend: Backend, old: list[Instance]) -> None:
    """A single worker's old instances stop (SIGTERM, then 10 s) before the new starts."""
    for inst in old:
        backend.stop_instance(inst.id, timeout=10)
