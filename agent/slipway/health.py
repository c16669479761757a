"""Health checks of new instances, with App Runner's HealthCheckConfiguration knobs.

``probe`` is one check; ``probe_tcp_many`` is the TCP check of many instances at once,
on one thread; ``ReconcilePace`` how often the reconcile pass checks live instances
and how long it trusts that nothing else changed. ``until_healthy`` decides when a
fresh instance may take traffic. Its rule, kept simple on purpose:

- a fresh instance needs time to boot, so failures *before its first success*
  only count toward ``deadline`` (seconds from the call), and are retried every
  ``BOOT_POLL`` seconds rather than every ``interval``, so a deployment waits
  for the app's boot, not for the next tick;
- after a first success, ``unhealthy_threshold`` consecutive failures fail it;
- ``healthy_threshold`` consecutive successes pass it;
- ``deadline`` always bounds the whole wait, and ``is_alive()`` returning False
  (the container exited) fails it at once.

An HTTP check is healthy on a 2xx or 3xx answer (redirects are not followed):
App Runner documents no status range, and this is what load balancers accept
by default besides plain 200.
"""

from __future__ import annotations

import errno
import http.client
import select
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from .errors import HealthCheckFailed, InvalidRequest

TCP_SETTLE = 0.2  # seconds a TCP check waits to see whether the peer hangs up
BOOT_POLL = 0.1  # seconds between checks until an instance first answers (a wake waits on it)


@dataclass(frozen=True)
class ReconcilePace:
    """How often the reconcile job looks (``reconcile_interval``), and at most how long
    it goes on trusting that nothing it reads changed (``reconcile_full_interval``):
    between full passes it only runs the health checks that are due. The full pass is
    also the safety net for a change no mark shows, and how a restarted Caddy or route
    DNS responder is noticed: 11 s, just past the 10 s the router trusts Caddy's config
    (``routing.router.DRIFT_CHECK_SECONDS``), so each full pass looks at it."""

    interval: float = 2.0
    full_interval: float = 11.0

    def check(self) -> None:
        if not self.interval > 0:
            raise InvalidRequest(f"reconcile_interval must be above 0, not {self.interval}")
        if not self.full_interval >= self.interval:
            raise InvalidRequest(
                f"reconcile_full_interval must be at least reconcile_interval"
                f" ({self.interval:g}), not {self.full_interval}"
            )


def probe(host: str, port: int, protocol: str, path: str, timeout: float) -> tuple[bool, str]:
    """One TCP connect or HTTP GET; returns (healthy, what happened)."""
    kind = protocol.upper()
    if kind == "TCP":
        target = f"TCP connect to {host}:{port}"
        try:
            with socket.create_connection((host, port), timeout=timeout) as sock:
                # A published port accepts even when nothing listens in the container
                # (docker-proxy answers, then hangs up): a peer that closes at once is down.
                sock.settimeout(min(timeout, TCP_SETTLE))
                try:
                    closed = sock.recv(1, socket.MSG_PEEK) == b""
                except TimeoutError:
                    closed = False
        except OSError as exc:
            return False, f"{target} failed: {exc}"
        if closed:
            return False, f"{target} was closed at once: nothing listens on the port"
        return True, f"{target} succeeded"
    if kind == "HTTP":
        path = path if path.startswith("/") else f"/{path}"
        target = f"HTTP GET {path} on {host}:{port}"
        # http.client: one plain request, no TLS setup or pooling to pay for on every check.
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            connection.request("GET", path, headers={"User-Agent": "slipway-health-check"})
            status = connection.getresponse().status
        except (OSError, http.client.HTTPException) as exc:
            return False, f"{target} failed: {type(exc).__name__}: {exc}"
        finally:
            connection.close()
        if 200 <= status < 400:
            return True, f"{target} returned {status}"
        return False, f"{target} returned {status}"
    raise ValueError(f"health check protocol must be TCP or HTTP, not {protocol!r}")


def probe_tcp_many(targets: Sequence[tuple[str, int, float]]) -> list[bool]:
    """The TCP check of each ``(host, port, timeout)``, all at once on this thread: what
    ``probe`` says of each (connected, and not hung up on within ``TCP_SETTLE``). A host
    with 100 services probes 20 instances a second; a thread each cost more CPU than
    the checks themselves, and ``selectors``' bookkeeping a third of what is left, so
    this speaks to epoll directly."""
    healthy = [False] * len(targets)
    poller = select.epoll()
    # fd -> [socket, target index, deadline, timeout, connected]
    waiting: dict[int, list] = {}
    now = time.monotonic()
    try:
        for index, (host, port, timeout) in enumerate(targets):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            if sock.connect_ex((host, port)) not in (0, errno.EINPROGRESS):
                sock.close()
                continue
            poller.register(sock.fileno(), select.EPOLLOUT)
            waiting[sock.fileno()] = [sock, index, now + timeout, timeout, False]
        while waiting:
            soonest = min(entry[2] for entry in waiting.values())
            for fd, _events in poller.poll(max(0.0, soonest - time.monotonic())):
                entry = waiting[fd]
                sock, index, _, timeout, connected = entry
                if not connected:  # connected, or refused
                    if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                        _forget(poller, waiting, fd)
                        continue
                    # Connected: a published port whose app is gone hangs up at once.
                    poller.modify(fd, select.EPOLLIN)
                    entry[2], entry[4] = time.monotonic() + min(timeout, TCP_SETTLE), True
                    continue
                try:
                    healthy[index] = sock.recv(1, socket.MSG_PEEK) != b""
                except OSError:
                    healthy[index] = False
                _forget(poller, waiting, fd)
            now = time.monotonic()
            for fd, entry in list(waiting.items()):
                if entry[2] <= now:  # connected and still open: up; never connected: down
                    healthy[entry[1]] = entry[4]
                    _forget(poller, waiting, fd)
    finally:
        for entry in waiting.values():
            entry[0].close()
        poller.close()
    return healthy


def _forget(poller: select.epoll, waiting: dict[int, list], fd: int) -> None:
    poller.unregister(fd)
    waiting.pop(fd)[0].close()


def until_healthy(
    host: str,
    port: int,
    protocol: str,
    path: str,
    interval: float,
    timeout: float,
    healthy_threshold: int,
    unhealthy_threshold: int,
    *,
    deadline: float,
    is_alive: Callable[[], bool] | None = None,
) -> Iterator[float]:
    """Probe until the instance is healthy, yielding the seconds to wait before each
    next probe (the caller waits: a deployment parks, a test sleeps); raise
    HealthCheckFailed with the last detail."""
    end = time.monotonic() + deadline
    successes = failures = 0
    seen_success = False
    detail = "no health check ran"
    while True:
        if is_alive is not None and not is_alive():
            raise HealthCheckFailed(f"instance stopped before it became healthy; last: {detail}")
        ok, detail = probe(host, port, protocol, path, timeout)
        if ok:
            seen_success = True
            successes, failures = successes + 1, 0
            if successes >= healthy_threshold:
                return
        else:
            successes = 0
            if seen_success:
                failures += 1
                if failures >= unhealthy_threshold:
                    raise HealthCheckFailed(
                        f"health check failed {failures} times in a row: {detail}"
                    )
        remaining = end - time.monotonic()
        if remaining <= 0:
            raise HealthCheckFailed(f"instance not healthy after {deadline:g}s: {detail}")
        # While it boots, look often: the first success starts the interval clock.
        pause = interval if seen_success else min(interval, BOOT_POLL)
        yield min(pause, remaining)
