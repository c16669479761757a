"""Secrets bound to services: names and references (ARN forms), the size limit and its
setting, sealed storage with grants, resolution for one service, the import of secret
files, and the signed endpoints. Errors name the secret, never its value."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from slipway.api.secrets import secrets_router
from slipway.builds import SecretRef
from slipway.config import load_settings
from slipway.errors import InvalidRequest, ResourceNotFound, SlipwayError
from slipway.observe.audit import HIDDEN, redact
from slipway.secretrefs import MAX_VALUE_LIMIT, Pointer, SecretLimits, parse_reference
from slipway.service_secrets import Secrets
from slipway.store import Store
from slipway.vault import Vault

VALUE = "s3cr3t-Value-9f2c"
SM = "arn:aws:secretsmanager:us-east-1:123456789012:secret:"
SSM = "arn:aws:ssm:eu-west-1:123456789012:parameter/"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "db.sqlite", Vault(tmp_path / "vault.key"))


@pytest.fixture
def secrets(tmp_path: Path, store: Store) -> Secrets:
    return Secrets(store, Vault(tmp_path / "vault.key"), SecretLimits(max_bytes=64))


def _raw_db(tmp_path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in tmp_path.glob("db.sqlite*"))


# --- references -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "pointer"),
    [
        ("db", Pointer(("db",))),
        ("/prod/db", Pointer(("prod/db",))),
        (f"{SSM}prod/db", Pointer(("prod/db",))),
        (f"{SM}db", Pointer(("db",))),
        (f"{SM}db-AbCdEf", Pointer(("db-AbCdEf", "db"))),
        (f"{SM}prod/db-AbCdEf:password::", Pointer(("prod/db-AbCdEf", "prod/db"), "password")),
        (f"{SM}db:user:AWSCURRENT:", Pointer(("db",), "user")),
        ("arn:aws-cn:ssm:cn-north-1:123456789012:parameter/x.y", Pointer(("x.y",))),
    ],
)
def test_references_point_at_names(reference: str, pointer: Pointer) -> None:
    assert parse_reference(reference) == pointer


@pytest.mark.parametrize(
    ("reference", "says"),
    [
        ("", "empty"),
        ("arn:aws:s3:::bucket/key", "is not an ARN of the form"),
        ("arn:aws:secretsmanager:us-east-1:1234:secret:db", "is not an ARN of the form"),
        (f"{SM[:-7]}parameter/db", "names secret:NAME"),
        ("arn:aws:ssm:us-east-1:123456789012:secret:db", "names parameter/NAME"),
        (f"{SM}db:k:AWSPREVIOUS:", "one version"),
        (f"{SM}db:k::v1", "one version"),
        (f"{SM}db:a:b:c:d", "at most"),
        (f"{SSM}bad name", "use 1 to 512"),
        (f"{SSM}a//b", "doubled /"),
        ("x" * 513, "use 1 to 512"),
    ],
)
def test_malformed_references_say_why(reference: str, says: str) -> None:
    with pytest.raises(InvalidRequest, match=says):
        parse_reference(reference)


# --- the limit and its setting ----------------------------------------------------


@pytest.mark.parametrize("limit", [0, -1, MAX_VALUE_LIMIT + 1])
def test_a_nonsense_limit_refuses_to_start_naming_the_setting(
    tmp_path: Path, store: Store, limit: int
) -> None:
    settings = load_settings(tmp_path / "none.yaml", {"SLIPWAY_SECRET_MAX_BYTES": str(limit)})
    with pytest.raises(InvalidRequest, match="secret_max_bytes"):
        Secrets(store, Vault(tmp_path / "k"), SecretLimits(settings.secret_max_bytes))


def test_a_mistyped_limit_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="setting secret_max_bytes: '64k'"):
        load_settings(tmp_path / "none.yaml", {"SLIPWAY_SECRET_MAX_BYTES": "64k"})


# --- storage ------------------------------------------------------------------------


def test_values_are_sealed_and_never_listed(tmp_path: Path, secrets: Secrets) -> None:
    row = secrets.put("db", VALUE, ["svc-a"])
    assert row["created"] is True
    assert row["grants"] == ["svc-a"]
    assert VALUE.encode() not in _raw_db(tmp_path)
    (listed,) = secrets.list()
    assert set(listed) == {"name", "grants", "created_at", "updated_at"}
    assert VALUE not in json.dumps(listed)
    again = secrets.put("db", VALUE + "2", ["svc-b"])
    assert again["created"] is False
    assert again["grants"] == ["svc-a", "svc-b"]  # grants given before stay


def test_grant_revoke_delete(secrets: Secrets) -> None:
    secrets.put("db", VALUE)
    assert secrets.grant("db", "svc-a")["grants"] == ["svc-a"]
    assert secrets.grant("db", "svc-a")["grants"] == ["svc-a"]  # once
    assert secrets.revoke("db", "svc-a")["grants"] == []
    with pytest.raises(ResourceNotFound, match="not granted to service svc-a"):
        secrets.revoke("db", "svc-a")
    secrets.delete("db")
    assert secrets.list() == []
    for call in (
        lambda: secrets.grant("db", "svc-a"),
        lambda: secrets.revoke("db", "svc-a"),
        lambda: secrets.delete("db"),
    ):
        with pytest.raises(ResourceNotFound, match="no secret named db"):
            call()


@pytest.mark.parametrize(
    ("name", "value", "services", "says"),
    [
        ("db", "x" * 65, [], "65 bytes; the limit is 64"),
        ("db", "é" * 33, [], "66 bytes"),
        ("db", "", [], "empty"),
        ("db", "a\x00b", [], "NUL"),
        ("bad name", VALUE, [], "secret name 'bad name'"),
        ("db", VALUE, ["x"], "service name 'x'"),
        ("db", VALUE, ["ok-service", "no/slash"], "service name 'no/slash'"),
    ],
)
def test_bad_input_stores_nothing(
    tmp_path: Path, secrets: Secrets, name: str, value: str, services: list[str], says: str
) -> None:
    with pytest.raises(InvalidRequest, match=says) as caught:
        secrets.put(name, value, services)
    assert secrets.list() == []
    if len(value) > 2:
        assert value not in caught.value.message


# --- resolution -------------------------------------------------------------------------


def test_a_granted_secret_resolves_by_every_form(secrets: Secrets) -> None:
    secrets.put("db", VALUE, ["svc-a"])
    secrets.put("prod/json", json.dumps({"user": "u1", "port": 5432}), ["svc-a"])
    refs = (
        SecretRef("PLAIN", "db"),
        SecretRef("SM", f"{SM}db-AbCdEf"),
        SecretRef("SSM", f"{SSM}db"),
        SecretRef("USER", f"{SM}prod/json-x1Y2z3:user::"),
        SecretRef("PORT", f"{SM}prod/json:port"),
    )
    assert secrets.resolve("svc-a", refs) == {
        "PLAIN": VALUE,
        "SM": VALUE,
        "SSM": VALUE,
        "USER": "u1",
        "PORT": "5432",
    }


def test_an_exact_name_wins_over_a_suffix(secrets: Secrets) -> None:
    secrets.put("db", "short", ["svc-a"])
    secrets.put("db-AbCdEf", "exact", ["svc-a"])
    assert secrets.resolve("svc-a", (SecretRef("V", f"{SM}db-AbCdEf"),)) == {"V": "exact"}


@pytest.mark.parametrize(
    ("ref", "error", "says"),
    [
        (SecretRef("DB", "db"), InvalidRequest, "DB: secret db is not granted to service svc-b"),
        (SecretRef("DB", "nope"), ResourceNotFound, "DB: secret nope does not exist"),
        (SecretRef("DB", "arn:aws:iam::1:x"), InvalidRequest, "DB: secret reference"),
        (SecretRef("DB", f"{SM}db:key"), InvalidRequest, "secret db is not a JSON object"),
    ],
)
def test_what_does_not_resolve_names_the_secret_never_the_value(
    secrets: Secrets, ref: SecretRef, error: type[SlipwayError], says: str
) -> None:
    secrets.put("db", VALUE, ["svc-a", "svc-b"] if ":key" in ref.value_from else ["svc-a"])
    with pytest.raises(error, match=says) as caught:
        secrets.resolve("svc-b", (ref,))
    assert VALUE not in caught.value.message


def test_a_missing_json_key_is_named(secrets: Secrets) -> None:
    secrets.put("j", json.dumps({"user": VALUE}), ["svc-a"])
    with pytest.raises(InvalidRequest, match="secret j has no JSON key 'password'") as caught:
        secrets.resolve("svc-a", (SecretRef("P", f"{SM}j:password"),))
    assert VALUE not in caught.value.message


# --- the secret files -------------------------------------------------------------------


def test_secret_files_are_imported_once_with_no_grants(tmp_path: Path, secrets: Secrets) -> None:
    files = tmp_path / "secrets"
    files.mkdir()
    (files / "db").write_text(VALUE + "\n")
    (files / "too-big").write_text("x" * 100)
    (files / "bad name").write_text("x")
    (files / "sub").mkdir()
    assert secrets.import_files(files) == ["db"]
    (listed,) = secrets.list()
    assert (listed["name"], listed["grants"]) == ("db", [])
    with pytest.raises(InvalidRequest, match="not granted to service svc-a"):
        secrets.resolve("svc-a", (SecretRef("DB", "db"),))
    secrets.grant("db", "svc-a")
    assert secrets.resolve("svc-a", (SecretRef("DB", "db"),)) == {"DB": VALUE}
    # The store holds it from now on: a changed file replaces nothing.
    (files / "db").write_text("changed")
    assert secrets.import_files(files) == []
    assert secrets.resolve("svc-a", (SecretRef("DB", "db"),)) == {"DB": VALUE}
    assert secrets.import_files(tmp_path / "missing") == []


def test_audit_rows_hide_the_value() -> None:
    params = {"Name": "db", "SecretString": VALUE, "Services": ["svc-a"]}
    assert redact("slipway:PutSecret", params) == {**params, "SecretString": HIDDEN}


# --- the signed endpoints -----------------------------------------------------------------


def test_endpoints_take_values_and_never_give_them(secrets: Secrets) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []

    async def authenticate(request: Request, body: bytes) -> None:
        if request.headers.get("authorization") != "ok":
            raise InvalidRequest("unsigned")

    async def signed_call(request: Request, operation: str, work: Any) -> Any:
        await authenticate(request, b"")
        params = json.loads(await request.body())
        calls.append((operation, params))
        return work(params)

    app = FastAPI()

    @app.exception_handler(SlipwayError)
    async def render(_: Request, exc: SlipwayError) -> JSONResponse:
        return JSONResponse({"__type": exc.code, "Message": exc.message}, status_code=exc.status)

    app.include_router(secrets_router(secrets, authenticate, signed_call))
    client = TestClient(app, headers={"authorization": "ok"})
    put = client.put(
        "/slipway/v1/secrets", json={"Name": "db", "SecretString": VALUE, "Services": ["svc-a"]}
    ).json()
    assert put["Created"] is True
    assert put["Secret"]["Grants"] == ["svc-a"]
    granted = client.put("/slipway/v1/secrets/grants", json={"Name": "db", "Service": "svc-b"})
    assert granted.json()["Secret"]["Grants"] == ["svc-a", "svc-b"]
    revoked = client.request(
        "DELETE", "/slipway/v1/secrets/grants", json={"Name": "db", "Service": "svc-a"}
    )
    assert revoked.json()["Secret"]["Grants"] == ["svc-b"]
    listed = client.get("/slipway/v1/secrets")
    assert [s["Name"] for s in listed.json()["Secrets"]] == ["db"]
    assert VALUE not in listed.text + json.dumps(put) + granted.text + revoked.text
    too_big = client.put("/slipway/v1/secrets", json={"Name": "x", "SecretString": "y" * 65})
    assert too_big.status_code == 400
    assert "the limit is 64" in too_big.json()["Message"]
    assert client.put("/slipway/v1/secrets", json={"Name": "x"}).status_code == 400
    deleted = client.request("DELETE", "/slipway/v1/secrets", json={"Name": "db"})
    assert deleted.json() == {"Name": "db"}
    assert client.get("/slipway/v1/secrets").json() == {"Secrets": []}
    assert client.get("/slipway/v1/secrets", headers={"authorization": "no"}).status_code == 400
    assert [op for op, _ in calls] == [
        "slipway:PutSecret",
        "slipway:GrantSecret",
        "slipway:RevokeSecret",
        "slipway:PutSecret",
        "slipway:PutSecret",
        "slipway:DeleteSecret",
    ]
