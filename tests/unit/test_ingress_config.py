"""The agent's public ingress in Caddy's config: hooks and API on their names over
HTTPS, proxied to the agent on loopback; and where a connection's token may go."""

from __future__ import annotations

import pytest

from slipway.config import load_settings
from slipway.errors import InvalidRequest
from slipway.routing.ingress import CLIENT_HEADER, Ingress
from slipway.routing.router import CustomHost, Route, Router, TlsSettings
from slipway.sources.github import GitHub, token_refusal

INGRESS = Ingress("hooks.example.com", "api.example.com", "127.0.0.1:8780")


def config(ingress: Ingress, hosts: list[CustomHost] | None = None) -> dict:
    router = Router(
        "http://127.0.0.1:2019",
        8080,
        tls=TlsSettings(https_port=8443, issuer="internal"),
        ingress=ingress,
    )
    return router.build_config([Route("a.localhost", ("127.0.0.1:1",))], hosts or [])


def ingress_route(cfg: dict, name: str) -> list[dict]:
    (route,) = [
        r
        for r in cfg["apps"]["http"]["servers"]["slipway-tls"]["routes"]
        if r.get("match") == [{"host": [name]}]
    ]
    return route["handle"][0]["routes"]


def test_no_ingress_no_https_server() -> None:
    assert list(config(Ingress())["apps"]) == ["http"]


def test_hooks_domain_serves_the_two_hooks_only() -> None:
    cfg = config(Ingress(hooks_domain="hooks.example.com"))
    routes = ingress_route(cfg, "hooks.example.com")
    assert routes[0]["match"] == [{"path": ["/hooks/github", "/hooks/registry"]}]
    (proxy,) = routes[0]["handle"]
    assert proxy["handler"] == "reverse_proxy"
    assert proxy["upstreams"] == [{"dial": "127.0.0.1:8780"}]
    assert proxy["headers"]["request"]["set"] == {CLIENT_HEADER: ["{http.request.remote.host}"]}
    assert routes[-1] == {"handle": [routes[-1]["handle"][0]]}  # everything else:
    assert routes[-1]["handle"][0]["status_code"] == 404
    # a certificate ahead of time, from the same issuer as custom domains
    tls = cfg["apps"]["tls"]
    assert tls["certificates"]["automate"] == ["hooks.example.com"]
    assert tls["automation"]["policies"][0]["issuers"] == [{"module": "internal"}]
    # plain HTTP for the name goes to HTTPS
    redirect = cfg["apps"]["http"]["servers"]["slipway"]["routes"][-2]
    assert redirect["match"] == [{"host": ["hooks.example.com"]}]
    assert redirect["handle"][0]["status_code"] == 308


def test_api_domain_serves_the_api_and_slipway_routes_but_not_the_ask() -> None:
    routes = ingress_route(config(INGRESS), "api.example.com")
    assert routes[0]["match"] == [{"path": ["/slipway/v1/domains/ask"]}]
    assert routes[0]["handle"][0]["status_code"] == 404
    assert routes[1]["match"] == [{"path": ["/", "/slipway/v1/*", "/console", "/console/*"]}]
    assert routes[1]["handle"][0]["handler"] == "reverse_proxy"
    assert routes[2]["handle"][0]["status_code"] == 404  # /metrics, /healthz, ...


def test_one_name_for_both_serves_both() -> None:
    routes = ingress_route(
        config(Ingress("both.example.com", "both.example.com")), "both.example.com"
    )
    assert routes[1]["match"] == [
        {
            "path": [
                "/hooks/github",
                "/hooks/registry",
                "/",
                "/slipway/v1/*",
                "/console",
                "/console/*",
            ]
        }
    ]


def test_ingress_beside_custom_domains() -> None:
    cfg = config(INGRESS, [CustomHost("shop.example.org", "a.localhost")])
    tls_routes = cfg["apps"]["http"]["servers"]["slipway-tls"]["routes"]
    assert [r.get("match", [{}])[0].get("host") for r in tls_routes] == [
        ["api.example.com"],
        ["hooks.example.com"],
        ["shop.example.org"],
        None,
    ]
    assert cfg["apps"]["tls"]["certificates"]["automate"] == [
        "api.example.com",
        "hooks.example.com",
        "shop.example.org",
    ]


@pytest.mark.parametrize("name", ["*.example.com", "example.com:443", "https://x.com", "a..b"])
def test_a_name_caddy_cannot_serve_is_refused_naming_the_setting(name: str) -> None:
    with pytest.raises(InvalidRequest, match="api_domain"):
        Ingress(api_domain=name).check()
    with pytest.raises(InvalidRequest, match="public_hooks_domain"):
        Ingress(hooks_domain=name).check()


def test_webhook_url_points_at_the_public_name() -> None:
    assert load_settings(environ={}).webhook_base == "http://127.0.0.1:8780"
    public = load_settings(environ={"SLIPWAY_PUBLIC_HOOKS_DOMAIN": "hooks.example.com"})
    assert public.webhook_base == "https://hooks.example.com"
    assert public.edge_limits.max_hook_bytes == 5 * 1024 * 1024
    on_port = load_settings(
        environ={"SLIPWAY_PUBLIC_HOOKS_DOMAIN": "h.example.com", "SLIPWAY_HTTPS_PORT": "8443"}
    )
    assert on_port.webhook_base == "https://h.example.com:8443"


HOSTS = {"github.com", "127.0.0.1:9418", "ghe.example.com"}


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/o/r.git",
        "https://GitHub.com/o/r",
        "https://ghe.example.com/o/r",
        "http://127.0.0.1:9418/o/r.git",  # loopback: the token never leaves this host
    ],
)
def test_token_goes_to_the_providers_hosts(url: str) -> None:
    assert token_refusal(url, HOSTS) is None


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://evil.example.com/o/r.git", "not one of the provider's hosts"),
        ("https://github.com.evil.example/o/r", "not one of the provider's hosts"),
        ("http://github.com/o/r.git", "not HTTPS"),
        ("http://ghe.example.com/o/r", "not HTTPS"),
        ("http://127.0.0.1:9/o/r", "not one of the provider's hosts"),
    ],
)
def test_token_is_refused_elsewhere_or_in_clear(url: str, why: str) -> None:
    assert why in (token_refusal(url, HOSTS) or "")


@pytest.mark.parametrize("url", ["http://ghe.example.com/api/v3", "ftp://api.github.com"])
def test_github_api_in_clear_off_this_host_is_refused_naming_the_setting(url: str) -> None:
    with pytest.raises(InvalidRequest, match="github_api_url.*not HTTPS"):
        GitHub(url)
    GitHub("https://ghe.example.com/api/v3")
    GitHub("http://127.0.0.1:8080")  # a fake on loopback
