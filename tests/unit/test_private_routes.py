"""Private services in the routes, without Caddy or HAProxy: which listener each host
is on, Caddy's public and private servers, and HAProxy's map that leaves them out."""

from __future__ import annotations

from pathlib import Path

from slipway.backends import Instance
from slipway.config import Settings
from slipway.models import ImageSource, ServiceSpec, SourceConfig
from slipway.operations.routes import desired_routes
from slipway.records import Service
from slipway.routing.caddyconfig import UNKNOWN_HOST_BODY, CustomHost, Route
from slipway.routing.haproxyconfig import assign, plan
from slipway.routing.private import PRIVATE_SERVER_NAME
from slipway.routing.router import Router
from slipway.vpc.network import NetworkConfig


def service(name: str, public: bool) -> Service:
    spec = ServiceSpec(
        source=SourceConfig(image=ImageSource("127.0.0.1:5000/hello:v1", "ECR")),
        network=NetworkConfig(publicly_accessible=public),
    )
    return Service(
        id=name,
        name=name,
        arn=f"arn:{name}",
        hostname=name,
        status="RUNNING",
        spec=spec,
        created_at=0.0,
        updated_at=0.0,
        live_deployment_id="dep",
    )


def instance(service_id: str, address: str) -> Instance:
    return Instance(
        id=f"i-{service_id}",
        name=f"i-{service_id}",
        service_id=service_id,
        deployment_id="dep",
        revision="sha256:1",
        state="running",
        host_port=28080,
        exit_code=None,
        started_at=None,
        host_ip=address,
    )


def test_a_private_service_is_routed_privately_only_with_an_ingress_connection() -> None:
    services = [service("pub", True), service("priv", False), service("lone", False)]
    instances = [instance("pub", "127.77.0.1"), instance("priv", "127.77.0.2")]
    routes = desired_routes(services, instances, Settings(), ingress={"arn:priv"})
    where = {r.host: (r.public, r.private) for r in routes}
    assert where == {
        "pub.localhost": (True, False),
        "priv.localhost": (False, True),
        "lone.localhost": (False, False),  # private, no connection: served nowhere
    }


ROUTES = [
    Route("pub.localhost", ("127.77.0.1:28080",)),
    Route("priv.localhost", ("127.77.0.2:28080",), public=False, private=True),
]


def hosts(server: dict) -> list[str]:
    return [h for r in server["routes"] for m in r.get("match", []) for h in m.get("host", [])]


def test_caddy_serves_private_hosts_on_the_private_listener_only() -> None:
    router = Router("http://127.0.0.1:2019", 8080, private_listen="127.0.0.1:8791")
    custom = [CustomHost("www.example.com", "priv.localhost")]
    servers = router.build_config(ROUTES, custom)["apps"]["http"]["servers"]
    assert hosts(servers["slipway"]) == ["pub.localhost"]  # the rest: 404, unknown host
    private = servers[PRIVATE_SERVER_NAME]
    assert private["listen"] == ["127.0.0.1:8791"]
    assert hosts(private) == ["priv.localhost"]
    assert private["routes"][-1]["handle"][0]["body"] == UNKNOWN_HOST_BODY
    # A private service's custom domain is not served publicly either.
    assert "slipway-tls" not in servers
    without = Router("http://127.0.0.1:2019", 8080).build_config(ROUTES, [])
    assert set(without["apps"]["http"]["servers"]) == {"slipway"}


def test_haproxy_leaves_private_hosts_to_caddy() -> None:
    mapped = assign(ROUTES, {}, [], backends=4)
    assert list(mapped) == ["pub.localhost"]
    commands = plan(ROUTES, {}, [], map_file=Path("/d/hosts.map"), backends=4)
    assert not [c for c in commands if "priv" in c or "127.77.0.2" in c]
    assert "add map /d/hosts.map pub.localhost s0" in commands
