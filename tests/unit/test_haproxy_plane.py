"""The HAProxy data plane without HAProxy: its config, the Runtime API commands that
bring it to the routes (``plan``), the parsing of its answers, and HaproxyRouter over
a fake Runtime API that keeps state as HAProxy does."""

from __future__ import annotations

from pathlib import Path

import pytest

from slipway.config import Settings
from slipway.errors import InvalidRequest, RouterError
from slipway.routing.caddyconfig import PAUSED_BODY, UNAVAILABLE_BODY, Route
from slipway.routing.haproxy import (
    HaproxyProcess,
    HaproxyRouter,
    caddy_http_socket,
    caddy_listen,
)
from slipway.routing.haproxyconfig import (
    SERVER_OPTIONS,
    DataPlane,
    Server,
    parse_in_flight,
    parse_map,
    parse_servers,
    plan,
    render_config,
)
from slipway.routing.router import Router

MAP = Path("/d/hosts.map")


def test_config_routes_hosts_by_map_with_fixed_pool() -> None:
    text = render_config(
        http_port=8080,
        socket=Path("/d/api.sock"),
        map_file=MAP,
        caddy_http=Path("/d/caddy-http.sock"),
        backends=3,
    )
    assert "    bind :8080\n" in text
    assert "stats socket /d/api.sock mode 600 level admin" in text
    assert "use_backend %[req.hdr(host),field(1,:),lower,map(/d/hosts.map,b_caddy)]" in text
    assert "backend s0\n" in text and "backend s2\n" in text and "backend s3\n" not in text
    assert "server caddy /d/caddy-http.sock" in text
    # The same answers as Caddy's config gives paused and unavailable services.
    assert f'string "{PAUSED_BODY}"' in text and f'string "{UNAVAILABLE_BODY}"' in text
    assert "status 503" in text
    assert "reload" not in text


def test_config_lets_streams_live_and_runs_one_thread_unless_told() -> None:
    def config(**kw: int) -> str:
        return render_config(
            http_port=8080, socket=Path("/a"), map_file=MAP, caddy_http=Path("/c"), backends=2, **kw
        )

    text = config()
    assert "    nbthread 1\n" in text
    assert "    timeout tunnel 1h\n" in text  # WebSockets
    assert "    timeout server 300s\n" in text  # an ordinary answer
    # An event stream may be silent longer than an answer may take: each pool backend
    # gives requests that ask for one the tunnel's timeout.
    stream = "http-request set-timeout server 1h if { req.hdr(accept) -m sub text/event-stream }"
    assert text.count(stream) == 2
    assert "backend s1\n    balance roundrobin\n    " + stream in text
    assert "    nbthread 2\n" in config(threads=2)


def test_plan_new_host_gets_servers_before_its_map_entry() -> None:
    routes = [Route("Hello.localhost", ("127.77.0.2:8080", "127.77.0.1:8080"))]
    assert plan(routes, {}, [], map_file=MAP, backends=4) == [
        f"add server s0/127.77.0.1_8080 127.77.0.1:8080 {SERVER_OPTIONS}",
        "enable server s0/127.77.0.1_8080",
        f"add server s0/127.77.0.2_8080 127.77.0.2:8080 {SERVER_OPTIONS}",
        "enable server s0/127.77.0.2_8080",
        f"add map {MAP} hello.localhost s0",
    ]


def test_plan_switch_adds_new_instance_then_drains_old() -> None:
    mapped = {"hello.localhost": "s1"}
    servers = [Server("s1", "127.77.0.1_8080", "127.77.0.1:8080", True)]
    routes = [Route("hello.localhost", ("127.77.0.9:8080",))]
    assert plan(routes, mapped, servers, map_file=MAP, backends=4) == [
        f"add server s1/127.77.0.9_8080 127.77.0.9:8080 {SERVER_OPTIONS}",
        "enable server s1/127.77.0.9_8080",
        "disable server s1/127.77.0.1_8080",
        "del server s1/127.77.0.1_8080",
    ]


def test_plan_in_step_is_empty_and_a_server_in_maintenance_is_deleted_again() -> None:
    mapped = {"hello.localhost": "s0"}
    servers = [
        Server("s0", "127.77.0.1_8080", "127.77.0.1:8080", True),
        Server("s0", "127.77.0.5_8080", "127.77.0.5:8080", False),  # still draining
    ]
    routes = [Route("hello.localhost", ("127.77.0.1:8080",))]
    assert plan(routes, mapped, servers, map_file=MAP, backends=2) == [
        "del server s0/127.77.0.5_8080"
    ]
    servers.pop()
    assert plan(routes, mapped, servers, map_file=MAP, backends=2) == []


def test_plan_paused_unavailable_and_gone_hosts() -> None:
    mapped = {"a.localhost": "s0", "gone.localhost": "s1"}
    servers = [
        Server("s0", "127.77.0.1_8080", "127.77.0.1:8080", True),
        Server("s1", "127.77.0.2_8080", "127.77.0.2:8080", True),
    ]
    routes = [Route("a.localhost", (), paused=True), Route("b.localhost", ())]
    assert plan(routes, mapped, servers, map_file=MAP, backends=2) == [
        f"set map {MAP} a.localhost b_paused",
        f"add map {MAP} b.localhost b_unavailable",
        f"del map {MAP} gone.localhost",
        "disable server s0/127.77.0.1_8080",
        "disable server s1/127.77.0.2_8080",
        "del server s0/127.77.0.1_8080",
        "del server s1/127.77.0.2_8080",
    ]


def test_plan_prefers_a_backend_with_nothing_draining_and_says_when_full() -> None:
    draining = [Server("s0", "127.77.0.1_8080", "127.77.0.1:8080", False)]
    routes = [Route("new.localhost", ("127.77.0.3:8080",))]
    commands = plan(routes, {}, draining, map_file=MAP, backends=2)
    assert f"add map {MAP} new.localhost s1" in commands
    two = routes + [Route("other.localhost", ("127.77.0.4:8080",))]
    with pytest.raises(RouterError, match="haproxy_backends"):
        plan(two, {"x.localhost": "s0"}, [], map_file=MAP, backends=1)


def test_parse_answers() -> None:
    assert parse_map("0x55 a.localhost s0\n0x56 b.localhost b_paused\n\n") == {
        "a.localhost": "s0",
        "b.localhost": "b_paused",
    }
    state = (
        "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state ...\n"
        "5 b_caddy 1 caddy - 2 0 1 1 3 1 0 2 0 0 0 0 - 0 - 0 0 - - 0\n"
        "6 s0 2 127.77.0.2_8080 127.77.0.2 2 1 1 1 3 1 0 0 0 0 0 0 - 8080 - 0 0 - - 0\n"
    )
    assert parse_servers(state)[1] == Server("s0", "127.77.0.2_8080", "127.77.0.2:8080", False)
    stat = (
        "# pxname,svname,qcur,qmax,scur,addr,\n"
        "slipway,FRONTEND,,,3,,\n"
        "s0,127.77.0.1_8080,1,0,4,127.77.0.1:8080,\n"
        "s0,BACKEND,0,0,5,,\n"
        "b_caddy,caddy,0,0,2,/d/caddy-http.sock,\n"
    )
    assert parse_in_flight(stat) == {"127.77.0.1:8080": 5}
    with pytest.raises(RouterError):
        parse_in_flight("Unknown command\n")


@pytest.mark.parametrize(
    ("plane", "named"),
    [
        (DataPlane(kind="nginx"), "data_plane"),
        (DataPlane(kind="haproxy", haproxy_backends=0), "haproxy_backends"),
        (DataPlane(kind="haproxy", haproxy_backends=-3), "haproxy_backends"),
        (DataPlane(kind="haproxy", haproxy_bin=" "), "haproxy_bin"),
        (DataPlane(kind="haproxy", threads=0), "haproxy_threads"),
    ],
)
def test_nonsense_settings_are_refused_by_name(plane: DataPlane, named: str) -> None:
    with pytest.raises(InvalidRequest, match=named):
        plane.check()


def test_settings_default_to_haproxy() -> None:
    plane = Settings().data_plane_limits
    assert plane.kind == "haproxy" and plane.haproxy_backends > 0
    plane.check()


class FakeRuntime:
    """HAProxy's Runtime API as state: a map, servers, in-flight counts; ``busy``
    servers refuse deletion as HAProxy does while they carry a connection."""

    def __init__(self) -> None:
        self.map: dict[str, str] = {}
        self.servers: dict[tuple[str, str], list] = {}  # (backend, name) -> [addr, enabled]
        self.busy: set[str] = set()
        self.flights: dict[str, int] = {}
        self.log: list[str] = []

    def command(self, line: str) -> str:
        self.log.append(line)
        words = line.split()
        if line.startswith("show map"):
            return "".join(f"0x1 {h} {b}\n" for h, b in self.map.items())
        if line == "show servers state":
            rows = ["1", "# be_id be_name srv_id srv_name srv_addr ..."]
            for (backend, name), (addr, enabled) in self.servers.items():
                ip, _, port = addr.rpartition(":")
                admin = 0 if enabled else 1
                rows.append(f"6 {backend} 1 {name} {ip} 2 {admin} 1 1 0 1 0 0 0 0 0 0 - {port}")
            return "\n".join(rows) + "\n"
        if line == "show stat -1 4 -1":
            rows = ["# pxname,svname,qcur,scur,addr,"]
            for (backend, name), (addr, _) in self.servers.items():
                rows.append(f"{backend},{name},0,{self.flights.get(addr, 0)},{addr},")
            return "\n".join(rows) + "\n"
        if words[:2] in (["add", "map"], ["set", "map"]):
            self.map[words[3]] = words[4]
            return "\n"
        if words[:2] == ["del", "map"]:
            del self.map[words[3]]
            return "\n"
        backend, _, name = words[2].partition("/")
        if words[:2] == ["add", "server"]:
            self.servers[(backend, name)] = [words[3], False]
            return "New server registered.\n"
        if words[0] in ("enable", "disable"):
            self.servers[(backend, name)][1] = words[0] == "enable"
            return "\n"
        if words[:2] == ["del", "server"]:
            if name in self.busy or self.servers[(backend, name)][1]:
                return "Server still has connections attached to it, cannot remove it.\n"
            del self.servers[(backend, name)]
            return "Server deleted.\n"
        return "Unknown command\n"


class FakeCaddy:
    http_port = 8080
    admin_url = "http://caddy-admin"

    def __init__(self) -> None:
        self.applied: list[list[Route]] = []
        self.flights: dict[str, int] = {}

    def apply(self, routes: list[Route]) -> bool:
        self.applied.append(list(routes))
        return False

    def upstream_requests(self) -> dict[str, int]:
        return dict(self.flights)


def make(tmp_path: Path) -> tuple[HaproxyRouter, FakeRuntime, FakeCaddy]:
    runtime, caddy = FakeRuntime(), FakeCaddy()
    router = HaproxyRouter(
        caddy, directory=tmp_path, caddy_http=tmp_path / "c.sock", backends=4, runtime=runtime
    )  # type: ignore[arg-type]
    return router, runtime, caddy


def test_router_converges_keeps_draining_server_and_writes_the_map(tmp_path: Path) -> None:
    router, runtime, caddy = make(tmp_path)
    first = [Route("a.localhost", ("127.77.0.1:8080",)), Route("p.localhost", (), True)]
    assert router.apply(first) is True
    assert runtime.map == {"a.localhost": "s0", "p.localhost": "b_paused"}
    assert runtime.servers == {("s0", "127.77.0.1_8080"): ["127.77.0.1:8080", True]}
    assert router.map_file.read_text() == "a.localhost s0\np.localhost b_paused\n"
    assert caddy.applied == [first]  # Caddy's side (TLS) gets the same routes
    assert router.routed() == {"a.localhost": ("127.77.0.1:8080",), "p.localhost": ()}

    runtime.busy.add("127.77.0.1_8080")  # a request in flight on the old instance
    runtime.flights = {"127.77.0.1:8080": 2}
    caddy.flights = {"127.77.0.1:8080": 1, "127.77.0.2:8080": 1}
    router.apply([Route("a.localhost", ("127.77.0.2:8080",))])
    assert runtime.servers[("s0", "127.77.0.1_8080")] == ["127.77.0.1:8080", False]
    assert runtime.servers[("s0", "127.77.0.2_8080")] == ["127.77.0.2:8080", True]
    assert router.upstream_requests() == {"127.77.0.1:8080": 3, "127.77.0.2:8080": 1}

    runtime.busy.clear()
    mark = len(runtime.log)
    router.refresh()  # the drained server goes; nothing else moves
    assert [c for c in runtime.log[mark:] if not c.startswith("show")] == [
        "del server s0/127.77.0.1_8080"
    ]
    assert list(runtime.servers) == [("s0", "127.77.0.2_8080")]


def test_router_refused_change_is_router_error(tmp_path: Path) -> None:
    router, runtime, _ = make(tmp_path)
    runtime.command = lambda line: "" if line.startswith("show") else "No such backend.\n"  # type: ignore[method-assign]
    routes = [Route("a.localhost", ("127.77.0.1:8080",))]
    with pytest.raises(RouterError, match="No such backend"):
        router.apply(routes)
    assert router.caddy.applied == [routes]  # the TLS side is not held back


def test_caddy_http_server_moves_to_a_socket_behind_haproxy(tmp_path: Path) -> None:
    # Beside Caddy's admin socket (a directory Caddy's user writes), else in the data dir.
    beside = caddy_http_socket("unix//run/slipway/caddy-admin.sock", tmp_path)
    assert beside == Path("/run/slipway/caddy-http.sock")
    path = caddy_http_socket("http://127.0.0.1:2019", tmp_path)
    assert path == tmp_path / "caddy-http.sock"
    caddy = Router("http://127.0.0.1:2019", 8080, http_listen=caddy_listen(path))
    server = caddy.build_config([])["apps"]["http"]["servers"]["slipway"]
    assert server["listen"] == [f"unix/{tmp_path}/caddy-http.sock"]


def test_an_haproxy_serving_this_config_is_kept(tmp_path: Path) -> None:
    process = HaproxyProcess(tmp_path, "the config\n")
    process.runtime = type("Info", (), {"command": lambda self, line: "Name: HAProxy\nPid: 42\n"})()
    (tmp_path / "haproxy.cfg").write_text("the config\n")
    assert process.keep(tmp_path / "hosts.map", "") is None  # nothing started
    assert process.answers()


def test_set_weight_of_one_instance_for_traffic_splitting(tmp_path: Path) -> None:
    router, runtime, _ = make(tmp_path)
    answers = {
        "set weight s0/127.77.0.2_8080 64": "",
        "set weight s0/127.77.0.1_8080 7": "No such server.\n",
    }
    plain = runtime.command
    runtime.command = lambda line: answers[line] if line in answers else plain(line)  # type: ignore[method-assign]
    router.apply([Route("a.localhost", ("127.77.0.1:8080", "127.77.0.2:8080"))])
    router.set_weight("A.localhost", "127.77.0.2:8080", 64)
    with pytest.raises(RouterError, match="refused the weight of s0/127.77.0.1_8080: No such"):
        router.set_weight("a.localhost", "127.77.0.1:8080", 7)
    with pytest.raises(RouterError, match="b.localhost has no instances routed"):
        router.set_weight("b.localhost", "127.77.0.2:8080", 1)
    with pytest.raises(RouterError, match="0 to 256"):
        router.set_weight("a.localhost", "127.77.0.2:8080", 300)
