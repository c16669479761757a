"""Scale to zero's rules with plain data and fakes: the slipway:idle-timeout tag, when a
service is quiet long enough, where an idle route leads, the waker's bound, and the
Idler's going idle and waking on the fake backend and router."""

from __future__ import annotations

import dataclasses
import http.client
import threading
from concurrent.futures import Future
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from test_services_worker import Env

from slipway.errors import InvalidRequest, SlipwayError
from slipway.idle import (
    TAG_IDLE_TIMEOUT,
    Quiet,
    WakeLimits,
    goes_idle,
    idle_timeout,
    parse_idle_timeout,
    waker_addresses,
)
from slipway.operations.routes import desired_routes
from slipway.operations.wake import Idler
from slipway.records import Service
from slipway.routing.waker import Refusal, Waker, request_host
from slipway.tags import tag_dict
from testkit.clock import Clock

WAKER = "127.77.0.0:28080"


def test_the_idle_timeout_reads_seconds_minutes_and_hours():
    assert parse_idle_timeout("90") == 90
    assert parse_idle_timeout("90s") == 90
    assert parse_idle_timeout("10m") == 600
    assert parse_idle_timeout("1h") == 3600
    for bad in ("", "soon", "0", "0s", "-1m", "10 minutes"):
        with pytest.raises(InvalidRequest, match=f"slipway:idle-timeout '{bad}' .*10m"):
            parse_idle_timeout(bad)


def test_a_malformed_idle_timeout_tag_is_refused_by_its_index():
    assert tag_dict([{"Key": TAG_IDLE_TIMEOUT, "Value": "10m"}]) == {TAG_IDLE_TIMEOUT: "10m"}
    with pytest.raises(InvalidRequest, match=r"Tags\[1\]: slipway:idle-timeout 'x'"):
        tag_dict([{"Key": "team", "Value": "web"}, {"Key": TAG_IDLE_TIMEOUT, "Value": "x"}])


def test_only_a_valid_tag_makes_a_service_scale_to_zero():
    assert idle_timeout({}) is None
    assert idle_timeout({TAG_IDLE_TIMEOUT: "2m"}) == 120
    assert idle_timeout({TAG_IDLE_TIMEOUT: "never"}) is None  # stored unchecked: ignored


def test_the_waker_listens_on_an_address_no_instance_is_given_first():
    addresses = waker_addresses("127.77.16.0/20", 28080)
    assert addresses[:3] == ["127.77.16.0:28080", "127.77.31.255:28080", "127.77.31.254:28080"]
    assert len(addresses) == 8
    assert waker_addresses("127.77.0.0/30", 1) == [
        "127.77.0.0:1", "127.77.0.3:1", "127.77.0.2:1", "127.77.0.1:1"
    ]  # fmt: skip


def test_the_waker_takes_the_first_free_address():
    first = Waker(["127.0.0.1:0"], lambda host: Future(), WakeLimits())
    first.start()
    try:
        taken = f"127.0.0.1:{first._server.server_address[1]}"
        second = Waker([taken, "127.0.0.1:0"], lambda host: Future(), WakeLimits())
        second.start()
        assert second.address == "127.0.0.1:0"
        second.stop()
        with pytest.raises(SlipwayError, match=f"the waker cannot listen: {taken}"):
            Waker([taken], lambda host: Future(), WakeLimits()).start()
    finally:
        first.stop()


def test_quiet_time_counts_from_the_last_request_or_request_in_flight():
    quiet = Quiet()
    quiet.observe("s", requests=5, in_flight=0, now=100)  # first sample: the clock starts
    assert quiet.quiet_for("s", 103) == 3
    quiet.observe("s", requests=6, in_flight=0, now=104)  # a new request
    assert quiet.quiet_for("s", 110) == 6
    quiet.observe("s", requests=6, in_flight=1, now=120)  # a long one, still running
    assert quiet.quiet_for("s", 121) == 1
    quiet.restart("s", 130)
    assert quiet.quiet_for("s", 131) == 1
    quiet.forget("s")
    assert quiet.quiet_for("s", 200) == 0


def test_a_service_goes_idle_only_past_its_timeout_with_nothing_in_flight():
    assert goes_idle(10, 10, 0)
    assert not goes_idle(10, 9.9, 0)
    assert not goes_idle(10, 60, 1)
    assert not goes_idle(None, 600, 0)


def test_wake_limits_are_checked():
    WakeLimits(hold_max=1, timeout=0.5).check()
    with pytest.raises(InvalidRequest, match="wake_hold_max"):
        WakeLimits(hold_max=0).check()
    with pytest.raises(InvalidRequest, match="wake_timeout"):
        WakeLimits(timeout=0).check()


def test_request_host_drops_the_port():
    assert request_host("Dozy.localhost:8080") == "dozy.localhost"
    assert request_host("dozy.localhost") == "dozy.localhost"


# -- routes -------------------------------------------------------------------------


def test_an_idle_route_leads_to_the_waker_until_an_instance_serves(tmp_path: Path):
    env = Env(tmp_path)
    service = env.create("dozy")
    env.drain()
    row = env.store.get_service(service.id)
    instances = env.backend.list_instances()
    host = env.settings.service_host(row.hostname)
    parked = {row.id: WAKER}
    assert desired_routes([row], [], env.settings, parked=parked)[0].upstreams == (WAKER,)
    served = desired_routes([row], instances, env.settings, parked=parked)[0]
    assert served.host == host and WAKER not in served.upstreams and served.upstreams
    paused = desired_routes(
        [dataclasses.replace(row, status="PAUSED")], [], env.settings, parked=parked
    )[0]
    assert paused.paused and paused.upstreams == ()


# -- the waker ----------------------------------------------------------------------


def test_the_waker_holds_up_to_its_bound_then_refuses():
    waking: Future[str] = Future()
    waker = Waker([WAKER], lambda host: waking, WakeLimits(hold_max=2, timeout=5))
    results: list[str | Refusal] = []
    held = [threading.Thread(target=lambda: results.append(waker.hold("a"))) for _ in range(2)]
    for thread in held:
        thread.start()
    _until(lambda: waker._held.get(waking) == 2)
    refused = waker.hold("a")
    assert isinstance(refused, Refusal) and refused.status == 503
    assert "already holds 2 requests (wake_hold_max 2)" in refused.message
    waking.set_result("127.77.0.9:28080")
    for thread in held:
        thread.join(5)
    assert results == ["127.77.0.9:28080"] * 2
    assert waker.hold("a") == "127.77.0.9:28080"  # awake: no bound
    assert waker._held == {}


def test_a_wake_that_fails_or_takes_too_long_is_refused():
    failed: Future[str] = Future()
    failed.set_exception(SlipwayError("no instance became healthy"))
    waker = Waker([WAKER], lambda host: failed, WakeLimits(timeout=0.1))
    assert waker.hold("a") == Refusal(503, "a could not wake: no instance became healthy")
    slow = Waker([WAKER], lambda host: Future(), WakeLimits(timeout=0.1))
    assert "did not wake within 0.1s (wake_timeout)" in slow.hold("a").message

    def unknown(host: str) -> Future[str]:
        raise SlipwayError(f"no service answers for {host}")

    assert Waker([WAKER], unknown, WakeLimits()).hold("b").message == "no service answers for b"


class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if "chunked" in self.headers.get("Transfer-Encoding", ""):
            body = b""
            while size := int(self.rfile.readline().strip(), 16):
                body += self.rfile.read(size)
                self.rfile.readline()
            self.rfile.readline()
        data = f"{self.headers['Host']} {self.path} ".encode() + body
        self.send_response(201)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-App", "echo")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def test_the_waker_proxies_a_held_request_with_its_body_and_host():
    app = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=app.serve_forever, daemon=True).start()
    address = f"127.0.0.1:{app.server_address[1]}"
    woken: Future[str] = Future()
    woken.set_result(address)
    asked: list[str] = []
    waker = Waker(["127.0.0.1:0"], lambda host: asked.append(host) or woken, WakeLimits())
    waker.start()
    try:
        port = waker._server.server_address[1]
        for body, chunked in ((b"hello", False), (iter([b"hel", b"lo"]), True)):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            headers = {"Host": "Dozy.localhost:8080"}
            conn.request("POST", "/x?y=1", body=body, headers=headers, encode_chunked=chunked)
            answer = conn.getresponse()
            assert (answer.status, answer.getheader("X-App")) == (201, "echo")
            assert answer.read() == b"Dozy.localhost:8080 /x?y=1 hello"
            conn.close()
        assert asked == ["dozy.localhost", "dozy.localhost"]
    finally:
        waker.stop()
        app.shutdown()
        app.server_close()


# -- the idler ----------------------------------------------------------------------


class _Networks:
    """Records what the Idler asks of the services' networks."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    def keep_service(self, service_id: str, keep: bool) -> None:
        self.calls.append(("keep" if keep else "let go", service_id))

    def release_service(self, service_id: str) -> None:
        self.calls.append(("release", service_id))


def _idler(
    env: Env,
    counts: dict[str, int],
    clock: Clock,
    networks: _Networks | None = None,
    waker: str = WAKER,
) -> Idler:
    return Idler(
        env.store,
        env.settings,
        env.services,
        env.backend,
        env.router,
        env.routes,
        env.reconciler,
        env.journal,
        env.queue,
        env.operations.runner,
        waker=[waker],
        limits=WakeLimits(),
        requests=lambda: counts,
        hosts=lambda: {
            env.settings.service_host(s.hostname).lower(): s.name for s in env.store.list_services()
        },
        networks=networks,
        clock=clock,
    )


def _gone_idle(env: Env) -> tuple[Service, Idler]:
    """Service "dozy" with a 1 s idle timeout, gone idle under an idler of its own."""
    service = env.create("dozy", Tags=[{"Key": TAG_IDLE_TIMEOUT, "Value": "1s"}])
    env.drain()
    env.routes.apply()
    clock = Clock()
    idler = _idler(env, {}, clock)
    idler.check_once()
    clock.now += 2
    idler.check_once()
    return service, idler


def test_a_quiet_service_goes_idle_and_its_first_request_wakes_it(tmp_path: Path):
    env = Env(tmp_path)
    service = env.create("dozy", Tags=[{"Key": TAG_IDLE_TIMEOUT, "Value": "10s"}])
    other = env.create("busy")  # no tag: never idle
    env.drain()
    env.routes.apply()
    counts, clock, networks = {"dozy": 3}, Clock(), _Networks()
    idler = _idler(env, counts, clock, networks)
    host = env.settings.service_host(env.store.get_service(service.id).hostname).lower()

    idler.check_once()
    clock.now += 9
    counts["dozy"] = 4  # a request: the quiet time starts again
    idler.check_once()
    clock.now += 9
    idler.check_once()
    assert env.backend.list_instances(service.id)  # 9 s quiet: still up
    clock.now += 1
    idler.check_once()
    assert [i for i in env.backend.list_instances(service.id) if i.running] == []
    assert env.router.routed()[host] == (WAKER,)
    assert idler.state("dozy")["idle_since"] is not None
    assert idler.state("dozy")["timeout"] == 10
    assert idler.state("busy")["timeout"] is None
    assert [i for i in env.backend.list_instances(other.id) if i.running]
    assert networks.calls == [("keep", service.id)]  # its wake makes no network
    assert service.id in env.reconciler.busy()  # neither kept up to MinSize nor scaled
    env.reconciler.reconcile_once()
    assert [i for i in env.backend.list_instances(service.id) if i.running] == []

    address = idler.wake_host(host).result(timeout=5)
    running = [i for i in env.backend.list_instances(service.id) if i.running]
    assert [i.address for i in running] == [address]
    assert env.router.routed()[host] == (address,)
    assert idler.state("dozy")["idle_since"] is None
    assert service.id not in env.reconciler.busy()
    assert networks.calls[1:] == [("let go", service.id)]
    stream = _events(env, service.id)
    assert "Service went idle: no request for 10s" in stream
    assert "Service woke: a request came in; 1 instance(s) healthy" in stream


def test_a_wake_that_fails_is_said_and_tried_again(tmp_path: Path):
    env = Env(tmp_path)
    service, idler = _gone_idle(env)
    host = env.settings.service_host(env.store.get_service(service.id).hostname).lower()
    env.unhealthy.add(env.store.get_service(service.id).live_revision)
    with pytest.raises(SlipwayError, match="no instance became healthy"):
        idler.wake_host(host).result(timeout=5)
    assert "Service could not wake" in _events(env, service.id)
    env.unhealthy.clear()
    assert idler.wake_host(host).result(timeout=5)


def test_a_service_paused_while_idle_is_no_longer_parked(tmp_path: Path):
    env = Env(tmp_path)
    service, idler = _gone_idle(env)
    assert service.id in env.routes.parked()
    env.services.pause_service(service.arn)
    env.drain()
    idler.check_once()
    assert env.routes.parked() == set()
    env.services.delete_service(service.arn)
    env.drain()
    idler.check_once()
    assert env.routes.parked() == set()


def test_a_deployment_of_an_idle_service_keeps_it_parked_then_wakes_it(tmp_path: Path):
    env = Env(tmp_path)
    service, idler = _gone_idle(env)
    host = env.settings.service_host(env.store.get_service(service.id).hostname).lower()
    env.services.start_deployment(service.arn)
    assert env.status(service) == "OPERATION_IN_PROGRESS"
    idler.check_once()
    env.routes.apply()
    assert env.router.routed()[host] == (WAKER,)  # still answered by the waker
    env.drain()
    env.routes.apply()
    idler.check_once()
    assert env.routes.parked() == set()
    assert WAKER not in env.router.routed()[host]
    assert "Service woke: an operation started its instances again" in _events(env, service.id)


def test_an_agent_that_restarts_leaves_idle_services_idle(tmp_path: Path):
    env = Env(tmp_path)
    service, before = _gone_idle(env)
    since = before.state("dozy")["idle_since"]
    assert since is not None

    again = Env(tmp_path)  # the same store, a new agent
    networks = _Networks()
    after = _idler(again, {}, Clock(), networks, waker="127.0.0.1:0")
    after.start()
    try:
        assert after.state("dozy")["idle_since"] == since
        assert networks.calls == [("keep", service.id)]
        again.reconciler.reconcile_once()  # MinSize 1, but no instance is started
        assert [i for i in again.backend.list_instances(service.id) if i.running] == []
        host = again.settings.service_host(again.store.get_service(service.id).hostname)
        assert again.router.routed()[host] == (after.waker.address,)
        assert after.wake_host(host.lower()).result(timeout=5)
        assert again.store.idle_services() == {}
    finally:
        after.stop()


def _until(check, seconds: float = 5) -> None:
    end = threading.Event()
    for _ in range(int(seconds / 0.01)):
        if check():
            return
        end.wait(0.01)
    raise AssertionError("timed out")


def _events(env: Env, service_id: str) -> str:
    return " ".join(e.message for e in env.logs.read(service_id, "events")[0])
