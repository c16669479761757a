"""Router.build_config is pure: the shape of Caddy's config for a set of routes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from slipway.errors import RouterError
from slipway.routing.caddyconfig import ACCESS_LOGGER, CustomHost
from slipway.routing.router import DRIFT_CHECK_SECONDS, Route, Router


def make_router(admin_url: str = "http://127.0.0.1:2019", http_port: int = 8080) -> Router:
    return Router(admin_url, http_port)


def server(config: dict) -> dict:
    return config["apps"]["http"]["servers"]["slipway"]


def handler_for(config: dict, host: str) -> dict:
    for route in server(config)["routes"]:
        if route.get("match") == [{"host": [host]}]:
            assert route["terminal"] is True
            (handler,) = route["handle"]
            return handler
    raise AssertionError(f"no route for {host}")


def test_admin_listen_kept_from_admin_url() -> None:
    assert make_router("http://127.0.0.1:2019").build_config([])["admin"] == {
        "listen": "127.0.0.1:2019"
    }
    assert make_router("http://localhost:2999/").build_config([])["admin"]["listen"] == (
        "localhost:2999"
    )
    assert make_router("http://[::1]:2019").admin_listen == "[::1]:2019"


def test_bad_admin_url_is_router_error() -> None:
    with pytest.raises(RouterError):
        Router("localhost:2019", 80)


def test_one_plain_http_server_on_the_http_port() -> None:
    srv = server(make_router(http_port=8080).build_config([]))
    assert srv["listen"] == [":8080"]
    assert srv["automatic_https"] == {"disable": True}


def test_route_proxies_to_upstreams_with_retries() -> None:
    config = make_router().build_config(
        [Route("hello.localhost", ("127.0.0.1:49154", "127.0.0.1:49153"))]
    )
    handler = handler_for(config, "hello.localhost")
    assert handler["handler"] == "reverse_proxy"
    assert handler["upstreams"] == [{"dial": "127.0.0.1:49153"}, {"dial": "127.0.0.1:49154"}]
    assert handler["load_balancing"]["try_duration"] == "5s"
    assert handler["load_balancing"]["try_interval"] == "50ms"
    assert "passive" in handler["health_checks"]


def test_paused_service_answers_503() -> None:
    config = make_router().build_config([Route("p.localhost", ("127.0.0.1:1",), paused=True)])
    handler = handler_for(config, "p.localhost")
    assert handler["handler"] == "static_response"
    assert handler["status_code"] == 503
    assert handler["body"] == "Service is paused"
    assert handler["headers"]["Content-Type"][0].startswith("text/plain")


def test_no_upstreams_answers_503_not_available() -> None:
    handler = handler_for(make_router().build_config([Route("e.localhost", ())]), "e.localhost")
    assert (handler["status_code"], handler["body"]) == (503, "Service is not available")


def test_unknown_host_falls_through_to_404() -> None:
    routes = server(make_router().build_config([Route("a.localhost", ("127.0.0.1:1",))]))["routes"]
    last = routes[-1]
    assert "match" not in last
    assert last["handle"][0]["status_code"] == 404
    assert last["handle"][0]["body"] == "No service at this host"


def test_config_is_deterministic_and_sorted_by_host() -> None:
    router = make_router()
    a = Route("a.localhost", ("127.0.0.1:2", "127.0.0.1:1"))
    b = Route("B.localhost", ("127.0.0.1:3",))
    one = router.build_config([b, a])
    two = router.build_config([a, b])
    assert json.dumps(one) == json.dumps(two)
    hosts = [r["match"][0]["host"][0] for r in server(one)["routes"] if "match" in r]
    assert hosts == ["a.localhost", "b.localhost"]


def test_config_survives_json_round_trip() -> None:
    config = make_router().build_config([Route("a.localhost", ("127.0.0.1:1",))])
    assert json.loads(json.dumps(config)) == config


def test_duplicate_hosts_rejected() -> None:
    with pytest.raises(ValueError):
        make_router().build_config([Route("a.localhost", ()), Route("A.localhost", ())])


def test_no_access_log_by_default() -> None:
    config = make_router().build_config([Route("a.localhost", ("127.0.0.1:1",))])
    assert "logging" not in config
    assert "logs" not in server(config)


def test_access_log_to_file_for_every_host(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    router = Router(
        "http://127.0.0.1:2019", 8080, access_log=log, access_log_roll_mb=10, access_log_keep=3
    )
    config = router.build_config([Route("a.localhost", ("127.0.0.1:1",))])
    assert server(config)["logs"] == {"default_logger_name": ACCESS_LOGGER}
    logs = config["logging"]["logs"]
    assert logs["default"] == {"exclude": ["http.log.access.slipway-access"]}
    assert logs[ACCESS_LOGGER] == {
        "writer": {
            "output": "file",
            "filename": str(log),
            "roll_size_mb": 10,
            "roll_keep": 3,
            "roll_gzip": False,
        },
        "encoder": {"format": "json"},
        "include": ["http.log.access.slipway-access"],
    }
    assert json.loads(json.dumps(config)) == config
    assert json.dumps(config) == json.dumps(
        router.build_config([Route("a.localhost", ("127.0.0.1:1",))])
    )


class FakeCaddy:
    """Just enough of Caddy's admin API to test apply's compare-then-load."""

    def __init__(self) -> None:
        self.config: object = None
        self.loads = 0
        self.reads = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path == "/config/":
            self.reads += 1
            return httpx.Response(200, content=json.dumps(self.config).encode())
        if request.method == "POST" and request.url.path == "/load":
            self.loads += 1
            self.config = json.loads(request.content)
            return httpx.Response(200)
        if request.url.path == "/reverse_proxy/upstreams":
            return httpx.Response(200, json=[{"address": "127.0.0.1:1", "num_requests": 2}])
        return httpx.Response(400, json={"error": "unknown path"})


@pytest.fixture
def fake_caddy() -> FakeCaddy:
    return FakeCaddy()


def faked(caddy: FakeCaddy) -> Router:
    return Router("http://127.0.0.1:2019", 8080, transport=httpx.MockTransport(caddy))


def test_apply_pushes_only_on_change(fake_caddy: FakeCaddy) -> None:
    router = faked(fake_caddy)
    routes = [Route("a.localhost", ("127.0.0.1:1",))]
    assert router.apply(routes) is True
    assert router.apply(routes) is False
    assert router.apply([Route("a.localhost", ("127.0.0.1:1",), paused=True)]) is True
    assert fake_caddy.loads == 2


def test_unchanged_routes_are_not_compared_again_until_the_drift_check(
    fake_caddy: FakeCaddy, monkeypatch: pytest.MonkeyPatch
) -> None:
    hosts: list[CustomHost] = []
    router = Router(
        "http://127.0.0.1:2019",
        8080,
        transport=httpx.MockTransport(fake_caddy),
        custom_hosts=lambda: hosts,
    )
    routes = [Route("a.localhost", ("127.0.0.1:1",))]
    assert router.apply(routes) is True
    reads = fake_caddy.reads
    assert router.apply(list(routes)) is False
    assert fake_caddy.reads == reads  # nothing built, nothing asked of Caddy

    hosts.append(CustomHost("example.com", "a.localhost"))  # a new domain: compared, loaded
    assert router.apply(routes) is True
    reads = fake_caddy.reads

    fake_caddy.config = None  # Caddy restarted empty; unseen while the last apply is trusted
    assert router.apply(routes) is False
    now = time.monotonic()
    monkeypatch.setattr(time, "monotonic", lambda: now + DRIFT_CHECK_SECONDS)
    assert router.apply(routes) is True
    assert fake_caddy.reads == reads + 1 and fake_caddy.loads == 3


def test_upstream_requests(fake_caddy: FakeCaddy) -> None:
    assert faked(fake_caddy).upstream_requests() == {"127.0.0.1:1": 2}


def test_caddy_error_is_router_error(fake_caddy: FakeCaddy) -> None:
    with pytest.raises(RouterError, match="unknown path"):
        faked(fake_caddy)._request("GET", "/nope")


def test_unreachable_caddy() -> None:
    router = Router("http://127.0.0.1:1", 8080, timeout=0.5)
    assert router.ping() is False
    with pytest.raises(RouterError, match="unreachable"):
        router.apply([])


def dynamic(caddy: FakeCaddy, tmp_path: Path) -> Router:
    return Router(
        "http://127.0.0.1:2019",
        8080,
        transport=httpx.MockTransport(caddy),
        route_dns="127.0.0.1:8753",
        route_table=tmp_path / "routes.json",
    )


def test_instances_on_one_port_resolve_through_the_route_dns(tmp_path: Path) -> None:
    router = dynamic(FakeCaddy(), tmp_path)
    config = router.build_config([Route("a.localhost", ("127.77.0.2:8080", "127.77.0.3:8080"))])
    handler = handler_for(config, "a.localhost")
    assert handler["dynamic_upstreams"] == {
        "source": "a",
        "name": "a.localhost.route.slipway.",
        "port": "8080",
        "refresh": "1s",
        "resolver": {"addresses": ["udp/127.0.0.1:8753"]},
        "dial_timeout": "1s",
    }
    # The fallback while the responder cannot answer: the instances as of this config.
    assert handler["upstreams"] == [{"dial": "127.77.0.2:8080"}, {"dial": "127.77.0.3:8080"}]
    mixed = router.build_config([Route("a.localhost", ("127.0.0.1:1", "127.0.0.1:2"))])
    assert "dynamic_upstreams" not in handler_for(mixed, "a.localhost")


def test_switching_instances_rewrites_the_table_without_a_load(tmp_path: Path) -> None:
    from slipway.routing.routedns import RouteTable

    caddy = FakeCaddy()
    router = dynamic(caddy, tmp_path)
    table = RouteTable(tmp_path / "routes.json")
    assert router.apply([Route("a.localhost", ("127.77.0.2:8080",))]) is True
    assert table.read() == {"a.localhost.route.slipway.": ["127.77.0.2"]}
    # A deployment, a scale-out: other instances, same shape: no load.
    assert router.apply([Route("a.localhost", ("127.77.0.3:8080",))]) is False
    assert router.apply([Route("a.localhost", ("127.77.0.3:8080", "127.77.0.4:8080"))]) is False
    assert table.read() == {"a.localhost.route.slipway.": ["127.77.0.3", "127.77.0.4"]}
    assert caddy.loads == 1
    # A pause, a new host, or no instances left changes the config: loads.
    assert router.apply([Route("a.localhost", ("127.77.0.3:8080",), paused=True)]) is True
    assert table.read() == {}
    assert router.apply([Route("a.localhost", ())]) is True
    assert caddy.loads == 3


def test_routed_reports_the_last_applied_instances(fake_caddy: FakeCaddy) -> None:
    router = faked(fake_caddy)
    assert router.routed() == {}
    router.apply(
        [
            Route("A.localhost", ("127.77.0.2:8080",)),
            Route("b.localhost", ("127.77.0.3:8080",), paused=True),
        ]
    )
    assert router.routed() == {"a.localhost": ("127.77.0.2:8080",), "b.localhost": ()}
