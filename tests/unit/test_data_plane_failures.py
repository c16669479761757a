"""A data plane that fails (HAProxy not installed, not running, refusing a change): the
agent says which and why on /healthz and once in each service's events stream, keeps
the last good routes (Caddy takes http_port back while HAProxy cannot serve it), and
tries again at every reconcile pass."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_services_worker import Env

from slipway.errors import RouterError
from slipway.routing.caddyconfig import Route
from slipway.routing.haproxy import HaproxyRouter

ROUTES = [Route("a.localhost", ("127.77.0.1:8080",))]


class FakeCaddy:
    """Caddy's side: where its HTTP server listens, what it was given."""

    http_port = 8080

    def __init__(self) -> None:
        self.listen: str | None = "unix//d/caddy-http.sock"
        self.applied: list[tuple[str | None, list[Route]]] = []

    def keep_route_dns(self) -> None:
        pass

    def listen_on(self, listen: str | None) -> None:
        self.listen = listen

    def apply(self, routes: list[Route]) -> bool:
        self.applied.append((self.listen, list(routes)))
        return True

    def upstream_requests(self) -> dict[str, int]:
        return {"127.77.0.1:8080": 2}


class DeadRuntime:
    def command(self, line: str) -> str:
        raise RouterError("HAProxy's Runtime API at /d/api.sock unreachable: refused")


def router(tmp_path: Path, binary: str) -> tuple[HaproxyRouter, FakeCaddy]:
    caddy = FakeCaddy()
    plane = HaproxyRouter(
        caddy,  # type: ignore[arg-type]
        directory=tmp_path,
        caddy_http=tmp_path / "c.sock",
        backends=2,
        binary=binary,
    )
    plane.process.runtime = plane.runtime = DeadRuntime()
    return plane, caddy


def test_haproxy_not_installed_leaves_http_port_to_caddy_with_every_route(tmp_path) -> None:
    plane, caddy = router(tmp_path, "no-such-haproxy")
    with pytest.raises(RouterError, match="HAProxy is not installed.*haproxy_bin") as caught:
        plane.keep_route_dns()
    assert "Caddy serves http_port meanwhile" in caught.value.message
    assert caddy.listen is None  # back on http_port
    assert plane.apply(ROUTES) is False  # no HAProxy asked
    assert caddy.applied[-1] == (None, ROUTES)
    assert plane.upstream_requests() == {"127.77.0.1:8080": 2}  # Caddy's alone
    assert plane.served() == {}  # Caddy's access log counts them
    with pytest.raises(RouterError, match="not installed"):  # tried again: same answer
        plane.keep_route_dns()
    assert caddy.listen is None and caddy.applied[-1] == (None, ROUTES)


def test_haproxy_refusing_its_config_is_named_and_caddy_keeps_the_port(tmp_path) -> None:
    plane, caddy = router(tmp_path, "false")  # a program that refuses everything
    with pytest.raises(RouterError, match="HAProxy refuses .*haproxy.cfg"):
        plane.keep_route_dns()
    # Caddy never left the port for an HAProxy that could not start.
    assert all(listen is None for listen, _ in caddy.applied)


def test_failure_said_once_on_healthz_and_in_events_until_it_ends(tmp_path) -> None:
    env = Env(tmp_path)
    service = env.create("hello")
    env.drain()
    failing = RouterError("HAProxy refused 'add server s0/x': No such backend.")
    real_apply = env.router.apply

    def refuse(routes):
        raise failing

    env.router.apply = refuse
    for _ in range(3):
        env.reconciler.reconcile_once()  # the pass goes on: instances are kept up
    (problem,) = env.operations.problems()
    assert "data plane: HAProxy refused 'add server s0/x': No such backend." in problem
    events = " ".join(e.message for e in env.logs.read(service.id, "events")[0])
    assert events.count("The data plane failed: HAProxy refused 'add server") == 1
    assert "The last good routes keep serving" in events

    env.router.apply = real_apply
    env.reconciler.reconcile_once()
    assert env.operations.problems() == []
    events = " ".join(e.message for e in env.logs.read(service.id, "events")[0])
    assert events.count("The data plane applies routes again") == 1
    assert env.router.routed()  # the route is there


def test_a_service_created_while_it_fails_is_told_at_the_next_pass(tmp_path) -> None:
    env = Env(tmp_path)
    watch = env.reconciler.plane
    watch.observe("HAProxy is not installed")
    late = env.create("late")
    watch.observe("HAProxy is not installed")
    watch.observe("HAProxy is not installed")
    lines = [e.message for e in env.logs.read(late.id, "events")[0]]
    assert sum("The data plane failed: HAProxy is not installed" in m for m in lines) == 1
