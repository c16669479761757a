"""The console's door, on the real app over a real store and access keys: sign-in with
a key (and what a wrong one, a forged form or an ended session sees), its cookie, the
headers of every page, one-time links, and forms turned into App Runner requests whose
refusals land next to the field they name."""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from slipway.access import Access
from slipway.access_limits import AccessLimits
from slipway.api.app import create_app
from slipway.api.validate import validate_input
from slipway.console import forms, pages
from slipway.console.sessions import SessionExpired, Sessions
from slipway.errors import InvalidRequest
from slipway.observe.audit import AuditTrail
from slipway.store import Store
from slipway.vault import Vault
from testkit.apiagent import app_agent


class Door:
    def __init__(
        self, tmp_path: Path, client: tuple[str, int] = ("testclient", 50000), **settings: float
    ) -> None:
        vault = Vault(tmp_path / "vault.key")
        store = Store(tmp_path / "db.sqlite", vault)
        self.access = Access(store, vault, AccessLimits(), region="us-east-1", account="0" * 12)
        created = self.access.ensure_root_key()
        assert created is not None
        self.key_id, self.secret = created
        self.audit = AuditTrail(store)
        agent = app_agent(tmp_path, store, self.access, self.audit, **settings)
        self.client = TestClient(create_app(agent), base_url="http://testserver", client=client)

    def sign_in(self, secret: str | None = None):
        return self.client.post(
            "/console/signin",
            data={"key_id": self.key_id, "secret": secret or self.secret, "next": ""},
            follow_redirects=False,
        )

    def csrf(self, path: str = "/console/signin") -> str:
        # any page of a signed-in session carries the token in its forms
        found = re.search(r'name="csrf" value="([^"]+)"', self.client.get(path).text)
        assert found, "no CSRF token on the page"
        return found.group(1)


@pytest.fixture
def door(tmp_path: Path) -> Door:
    return Door(tmp_path)


def test_a_wrong_secret_is_refused_with_a_clear_message_and_audited(door: Door) -> None:
    answer = door.sign_in("not-the-secret")
    assert answer.status_code == 401
    assert "The access key id or secret is wrong" in answer.text
    assert "slipway_console" not in answer.headers.get("set-cookie", "")
    [row] = door.audit.list()
    assert (row["operation"], row["outcome"]) == (
        "slipway:ConsoleSignIn",
        "UnrecognizedClientException",
    )


def test_signing_in_sets_a_strict_http_only_cookie_and_every_page_a_strict_csp(door: Door) -> None:
    answer = door.sign_in()
    assert answer.status_code == 303 and answer.headers["location"] == "/console/services"
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/console" in cookie
    assert "secure" not in cookie  # plain HTTP on loopback
    assert "max-age" not in cookie  # the server ends it (console_session_ttl)
    page = door.client.get("/console/signin")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "style=" not in page.text and "<script>" not in page.text  # no inline code
    assert [r["principal"] for r in [door.access.list_keys()[0]]] == ["root"]
    assert [(r["operation"], r["access_key_id"]) for r in door.audit.list()] == [
        ("slipway:ConsoleSignIn", door.key_id)
    ]


def test_the_cookie_is_secure_behind_caddy_over_https_only(tmp_path: Path) -> None:
    behind = Door(tmp_path / "a", client=("127.0.0.1", 40000))  # Caddy on loopback
    behind.client.headers["X-Forwarded-Proto"] = "https"
    assert "secure" in behind.sign_in().headers["set-cookie"].lower()
    outside = Door(tmp_path / "b", client=("203.0.113.9", 40000))  # not Caddy: not trusted
    outside.client.headers["X-Forwarded-Proto"] = "https"
    assert "secure" not in outside.sign_in().headers["set-cookie"].lower()


def test_a_forged_csrf_token_is_refused_and_sign_out_ends_the_session_on_the_server(
    door: Door,
) -> None:
    door.sign_in()
    cookie = door.client.cookies.get("slipway_console")
    forged = door.client.post("/console/signout", data={"csrf": "forged"})
    assert forged.status_code == 403
    assert "security token (CSRF) is missing or wrong" in forged.text
    token = door.csrf()
    out = door.client.post("/console/signout", data={"csrf": token}, follow_redirects=False)
    assert out.status_code == 303
    door.client.cookies.set("slipway_console", cookie, path="/console")  # replayed after sign-out
    again = door.client.post("/console/signout", data={"csrf": token})
    assert again.status_code == 401 and "Your session ended: sign in again" in again.text


def test_an_expired_session_says_so(tmp_path: Path) -> None:
    door = Door(tmp_path, console_session_ttl=0.01)
    door.sign_in()
    time.sleep(0.05)
    answer = door.client.post("/console/signout", data={"csrf": "x"})
    assert answer.status_code == 401 and "Your session expired: sign in again" in answer.text


def test_a_disabled_key_ends_its_sessions(door: Door) -> None:
    door.sign_in()
    door.access.set_key_status(door.key_id, "Inactive")
    answer = door.client.post("/console/signout", data={"csrf": "x"})
    assert answer.status_code == 401 and "is no longer active" in answer.text


def test_a_session_outlives_a_restart_and_a_sign_out_ends_it(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite", Vault(tmp_path / "vault.key"))
    clock = [1000.0]

    def agent() -> Sessions:  # a restart: new Sessions over the same store
        return Sessions(60, 30, key_usable=lambda key: True, kept=store, clock=lambda: clock[0])

    token, session = agent().start("SLWYKEY")
    assert agent().get(token) == session
    kept = str(store.db.execute("SELECT * FROM console_sessions").fetchall())
    assert token not in kept and session.csrf not in kept  # nothing to forge a form with
    assert Sessions.csrf_ok(agent().get(token), session.csrf)
    other, _ = agent().start("SLWYKEY")
    assert not Sessions.csrf_ok(agent().get(other), session.csrf)
    agent().end(token)
    with pytest.raises(SessionExpired, match="ended"):
        agent().get(token)
    late, _ = agent().start("SLWYKEY")
    clock[0] += 61
    with pytest.raises(SessionExpired, match="expired"):
        agent().get(late)


def test_a_console_link_signs_in_once_even_across_a_restart(tmp_path: Path) -> None:
    clock = [1000.0]
    store = Store(tmp_path / "db.sqlite", Vault(tmp_path / "vault.key"))
    sessions = Sessions(60, 30, key_usable=lambda key: True, kept=store, clock=lambda: clock[0])
    token, expires = sessions.new_link("SLWYKEY")
    assert expires == 1030.0
    assert token not in str(store.db.execute("SELECT * FROM console_links").fetchall())
    restarted = Sessions(60, 30, key_usable=lambda key: True, kept=store, clock=lambda: clock[0])
    assert restarted.redeem(token) == "SLWYKEY"
    with pytest.raises(SessionExpired, match="used already or has expired"):
        sessions.redeem(token)
    late, _ = sessions.new_link("SLWYKEY")
    clock[0] += 31
    with pytest.raises(SessionExpired):
        sessions.redeem(late)
    sessions.new_link("SLWYKEY")  # and the ended ones leave the store
    assert store.db.execute("SELECT count(*) FROM console_links").fetchone() == (1,)


def test_the_api_messages_go_next_to_the_fields_they_name() -> None:
    params = forms.create_service({"name": "<x>", "image": "nope", "tags": "a=1"})
    with pytest.raises(InvalidRequest) as refused:
        validate_input("CreateService", params)
    placed = pages.field_errors(refused.value.message, forms.FIELDS)
    assert set(placed) == {"name", "image"}
    assert "at 'ServiceName'" in placed["name"][0]
    assert pages.field_errors("ServiceName: taken", forms.FIELDS) == {
        "name": ["ServiceName: taken"]
    }
    assert pages.field_errors("something else", forms.FIELDS) == {"": ["something else"]}


def test_a_form_line_that_is_not_a_pair_is_named() -> None:
    with pytest.raises(forms.FormError, match="line 2: expected KEY=VALUE"):
        forms.create_service({"name": "web1", "env": "A=1\nnot a pair"})


def test_the_edit_form_round_trips_a_described_service() -> None:
    fields = {
        "source_kind": "image",
        "image": "127.0.0.1:5000/hello:v1",
        "registry_type": "ECR",
        "port": "8080",
        "env": "A=1\nB=<script>",
        "cpu": "1024",
        "memory": "2048",
        "health_protocol": "HTTP",
        "health_path": "/health",
        "auto_deploy": "on",
    }
    params = forms.update_service("arn", fields)
    described = {**params, "SourceConfiguration": params["SourceConfiguration"]}
    again = forms.form_of(described)
    assert {k: again.get(k, "") for k in fields} == fields


def test_a_session_from_before_the_links_table_stays_signed_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import slipway.store.schema as store_module

    every = list(store_module.MIGRATIONS)
    monkeypatch.setattr(
        store_module, "MIGRATIONS", every[: every.index(store_module._m16_console_links)]
    )
    vault = Vault(tmp_path / "vault.key")
    old = Store(tmp_path / "db.sqlite", vault)
    old.db["console_sessions"].insert(
        {
            "digest": hashlib.sha256(b"cookie").hexdigest(),
            "key_id": "SLWYKEY",
            "csrf": "kept",
            "expires_at": 2000.0,
        }
    )
    monkeypatch.setattr(store_module, "MIGRATIONS", every)
    store = Store(tmp_path / "db.sqlite", vault)
    assert "csrf" not in store.db["console_sessions"].columns_dict
    sessions = Sessions(60, 30, key_usable=lambda key: True, kept=store, clock=lambda: 1000.0)
    session = sessions.get("cookie")
    assert session.key_id == "SLWYKEY" and session.csrf != "kept"
