"""Caddy's ACME issuer as the acme_challenges and tls_renew_interval settings shape it
(the issuance itself is tests/e2e/test_acme.py, against Pebble)."""

from __future__ import annotations

import pytest

from slipway.config import load_settings
from slipway.domains.rules import tls_settings
from slipway.errors import RouterError
from slipway.routing.router import CustomHost, Route, Router, TlsSettings

ROUTES = [Route("a.localhost", ("127.0.0.1:1",))]


def tls_app(**tls: object) -> dict:
    router = Router("http://127.0.0.1:2019", 8080, tls=TlsSettings(**tls))  # type: ignore[arg-type]
    return router.build_config(ROUTES, [CustomHost("example.com", "a.localhost")])["apps"]["tls"]


def test_by_default_both_challenges_and_caddys_renewal_pass() -> None:
    app = tls_app(issuer="acme")
    assert "challenges" not in app["automation"]["policies"][0]["issuers"][0]
    assert "renew_interval" not in app["automation"]


@pytest.mark.parametrize(
    ("allowed", "disabled"),
    [(("http-01",), {"tls-alpn"}), (("tls-alpn-01",), {"http"})],
)
def test_a_challenge_left_out_is_disabled_in_caddy(allowed: tuple, disabled: set) -> None:
    app = tls_app(issuer="acme", acme_challenges=allowed, renew_interval=2)
    issuer = app["automation"]["policies"][0]["issuers"][0]
    assert issuer["challenges"] == {name: {"disabled": True} for name in disabled}
    assert app["automation"]["renew_interval"] == "2s"


def test_settings_reach_the_router_and_nonsense_refuses_to_start() -> None:
    settings = load_settings(
        environ={"SLIPWAY_ACME_CHALLENGES": "tls-alpn-01", "SLIPWAY_TLS_RENEW_INTERVAL": "5"}
    )
    tls = tls_settings(settings)
    assert (tls.acme_challenges, tls.renew_interval) == (("tls-alpn-01",), 5.0)
    for environ, named in [
        ({"SLIPWAY_ACME_CHALLENGES": "dns-01"}, "acme_challenges"),
        ({"SLIPWAY_ACME_CHALLENGES": ""}, "acme_challenges"),
        ({"SLIPWAY_TLS_RENEW_INTERVAL": "-1"}, "tls_renew_interval"),
    ]:
        with pytest.raises(RouterError, match=named):
            tls_settings(load_settings(environ=environ))
