"""Custom domains in Caddy's config: an HTTPS server, redirects, and the tls app."""

from __future__ import annotations

import json

import httpx
import pytest

from slipway.errors import RouterError
from slipway.routing.router import CustomHost, Route, Router, TlsSettings

ROUTES = [
    Route("a.localhost", ("127.0.0.1:1",)),
    Route("b.localhost", ("127.0.0.1:2",)),
    Route("p.localhost", (), paused=True),
]
HOSTS = [
    CustomHost("*.example.com", "a.localhost"),
    CustomHost("login.example.com", "b.localhost"),
    CustomHost("example.com", "a.localhost"),
    CustomHost("paused.example.org", "p.localhost"),
]


def router(**tls: object) -> Router:
    return Router("http://127.0.0.1:2019", 8080, tls=TlsSettings(**tls))  # type: ignore[arg-type]


def test_no_custom_domains_no_https_server_nor_tls_app() -> None:
    config = router(https_port=8443).build_config(ROUTES, [])
    assert list(config["apps"]) == ["http"]
    assert list(config["apps"]["http"]["servers"]) == ["slipway"]


def test_https_server_routes_like_the_default_hosts_exact_before_wildcard() -> None:
    config = router(https_port=8443, issuer="internal").build_config(ROUTES, HOSTS)
    http = config["apps"]["http"]
    assert (http["http_port"], http["https_port"]) == (8080, 8443)
    tls_server = http["servers"]["slipway-tls"]
    assert tls_server["listen"] == [":8443"]
    assert tls_server["tls_connection_policies"] == [{}]
    assert tls_server["automatic_https"] == {"disable": True}
    routes = tls_server["routes"]
    assert [r.get("match") for r in routes] == [
        [{"host": ["example.com"]}],
        [{"host": ["login.example.com"]}],
        [{"host": ["paused.example.org"]}],
        [{"host": ["*.example.com"]}],
        None,  # the 404 for any other host
    ]
    # the same handlers as the default hosts' routes on the HTTP server (one host each)
    default = {
        r["match"][0]["host"][0]: r["handle"]
        for r in http["servers"]["slipway"]["routes"]
        if r.get("match") and len(r["match"][0]["host"]) == 1
    }
    assert routes[0]["handle"] == default["a.localhost"]
    assert routes[1]["handle"] == default["b.localhost"]
    assert routes[2]["handle"] == default["p.localhost"]  # paused: 503 there too
    assert routes[3]["handle"] == default["a.localhost"]
    assert routes[4]["handle"][0]["status_code"] == 404


def test_http_redirects_custom_domains_keeping_the_https_port() -> None:
    routes = router(https_port=8443).build_config(ROUTES, HOSTS)["apps"]["http"]["servers"][
        "slipway"
    ]["routes"]
    redirect = routes[-2]
    assert redirect["match"] == [
        {"host": ["example.com", "login.example.com", "paused.example.org", "*.example.com"]}
    ]
    (handler,) = redirect["handle"]
    assert handler["status_code"] == 308
    assert handler["headers"]["Location"] == ["https://{http.request.host}:8443{http.request.uri}"]
    on_443 = router(https_port=443).build_config(ROUTES, HOSTS)
    handler = on_443["apps"]["http"]["servers"]["slipway"]["routes"][-2]["handle"][0]
    assert handler["headers"]["Location"] == ["https://{http.request.host}{http.request.uri}"]


def test_internal_ca_exact_names_automated_wildcards_on_demand() -> None:
    config = router(issuer="internal", ask_url="http://127.0.0.1:8780/ask").build_config(
        ROUTES, HOSTS
    )
    tls = config["apps"]["tls"]
    exact = ["example.com", "login.example.com", "paused.example.org"]
    assert tls["certificates"] == {"automate": exact}
    assert tls["automation"]["policies"] == [
        {"subjects": exact, "issuers": [{"module": "internal"}], "disable_ocsp_stapling": True},
        {
            "subjects": ["*.example.com"],
            "issuers": [{"module": "internal"}],
            "on_demand": True,
            "disable_ocsp_stapling": True,
        },
    ]
    assert tls["automation"]["on_demand"] == {"ask": "http://127.0.0.1:8780/ask"}
    assert config["apps"]["pki"] == {"certificate_authorities": {"local": {"install_trust": False}}}


def test_acme_issuer_with_ca_email_and_private_root() -> None:
    config = router(
        issuer="acme",
        acme_ca="https://acme.internal/directory",
        acme_email="ops@example.com",
        acme_ca_root="/etc/slipway/acme-root.pem",
    ).build_config(ROUTES, [CustomHost("example.com", "a.localhost")])
    (policy,) = config["apps"]["tls"]["automation"]["policies"]
    assert policy["issuers"] == [
        {
            "module": "acme",
            "ca": "https://acme.internal/directory",
            "email": "ops@example.com",
            "trusted_roots_pem_files": ["/etc/slipway/acme-root.pem"],
        }
    ]
    assert "on_demand" not in config["apps"]["tls"]["automation"]
    assert "pki" not in config["apps"]


def test_hosts_of_services_without_a_route_are_left_out() -> None:
    config = router().build_config(ROUTES, [CustomHost("gone.example.com", "gone.localhost")])
    assert list(config["apps"]) == ["http"]


def test_a_name_claimed_twice_keeps_the_first() -> None:
    hosts = [CustomHost("x.example.com", "a.localhost"), CustomHost("X.example.com", "b.localhost")]
    routes = router().build_config(ROUTES, hosts)["apps"]["http"]["servers"]["slipway-tls"][
        "routes"
    ]
    assert routes[0]["handle"][0]["upstreams"] == [{"dial": "127.0.0.1:1"}]
    assert len(routes) == 2


def test_bad_issuer() -> None:
    with pytest.raises(RouterError, match="acme, internal"):
        TlsSettings(issuer="letsencrypt")


def test_provider_is_asked_on_apply_and_refresh_reapplies() -> None:
    hosts: list[CustomHost] = []
    loads: list[dict] = []
    current: list[object] = [None]

    def caddy(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, content=json.dumps(current[0]).encode())
        loads.append(json.loads(request.content))
        current[0] = loads[-1]
        return httpx.Response(200)

    r = Router(
        "http://127.0.0.1:2019",
        8080,
        transport=httpx.MockTransport(caddy),
        custom_hosts=lambda: hosts,
    )
    assert r.refresh() is False  # nothing applied yet
    assert r.apply(ROUTES) is True
    assert r.refresh() is False  # no change
    hosts.append(CustomHost("example.com", "a.localhost"))
    assert r.refresh() is True
    assert "slipway-tls" in loads[-1]["apps"]["http"]["servers"]


def test_internal_ca_root() -> None:
    def caddy(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/pki/ca/local"
        return httpx.Response(200, json={"id": "local", "root_certificate": "PEM"})

    r = Router("http://127.0.0.1:2019", 8080, transport=httpx.MockTransport(caddy))
    assert r.internal_ca_root() == "PEM"
