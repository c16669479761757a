"""Principals, policies and key lifecycle on a real store: a disabled, deleted or expired
key is refused at once, last use is written at most once per interval, a bad policy
stores nothing, and authorization asks the key's principal's policies."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from slipway.access import Access
from slipway.access_limits import AccessLimits, parse_expiry
from slipway.api import authz
from slipway.config import load_settings
from slipway.errors import AccessDenied, InvalidRequest, ResourceNotFound
from slipway.policies import AccessRequest
from slipway.store import Store
from slipway.store.schema import _m9_principals
from slipway.vault import Vault
from testkit.clock import Clock

REGION, ACCOUNT = "us-east-1", "000000000000"
SVC = f"arn:aws:apprunner:{REGION}:{ACCOUNT}:service/web/0123"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "db.sqlite", Vault(tmp_path / "vault.key"))


@pytest.fixture
def access(tmp_path: Path, store: Store, clock: Clock) -> Access:
    return Access(
        store,
        Vault(tmp_path / "vault.key"),
        AccessLimits(last_used_interval=60),
        region=REGION,
        account=ACCOUNT,
        clock=clock,
    )


def test_root_is_made_once_and_is_administrator(access: Access) -> None:
    created = access.ensure_root_key()
    assert created is not None
    assert access.ensure_root_key() is None
    key_id, secret = created
    assert access.lookup_secret(key_id) == secret
    access.authorize(key_id, AccessRequest("slipway:CreateKey", "*"))
    assert [p["name"] for p in access.list_principals()] == ["root"]


def test_migration_adopts_existing_keys_as_root(tmp_path: Path) -> None:
    import sqlite_utils

    from slipway.store.schema import MIGRATIONS, WithVault

    vault = Vault(tmp_path / "vault.key")
    db = sqlite_utils.Database(tmp_path / "old.sqlite")

    def apply(migrations: list[Any]) -> None:
        for migrate in migrations:
            migrate.step(db, vault) if isinstance(migrate, WithVault) else migrate(db)

    step = next(i for i, m in enumerate(MIGRATIONS) if m is _m9_principals)
    apply(MIGRATIONS[:step])
    db["access_keys"].insert({"id": "SLWYOLD", "secret": "x", "created_at": 1.0})
    apply(MIGRATIONS[step:])
    row = next(db.query("SELECT * FROM access_keys"))
    assert (row["principal"], row["status"]) == ("root", "Active")
    policy = next(db.query("SELECT * FROM principal_policies"))
    assert (policy["principal"], policy["name"]) == ("root", "administrator")


def test_disabled_deleted_and_expired_keys_are_refused_at_once(
    access: Access, clock: Clock
) -> None:
    access.ensure_root_key()
    key = access.create_key("root", expires="1h")
    key_id = key["AccessKeyId"]
    assert key["ExpiresAt"] == clock.now + 3600
    assert access.lookup_secret(key_id) == key["SecretAccessKey"]
    access.set_key_status(key_id, "Inactive")
    assert access.lookup_secret(key_id) is None
    access.set_key_status(key_id, "Active")
    assert access.lookup_secret(key_id) is not None
    clock.now += 3600
    assert access.lookup_secret(key_id) is None  # expired
    other = access.create_key("root")["AccessKeyId"]
    access.delete_key(other)
    assert access.lookup_secret(other) is None
    with pytest.raises(ResourceNotFound):
        access.delete_key(other)
    with pytest.raises(InvalidRequest, match="Status"):
        access.set_key_status(key_id, "Paused")


def test_last_used_is_written_at_most_once_per_interval(
    access: Access, store: Store, clock: Clock
) -> None:
    key_id, _ = access.ensure_root_key() or ("", "")
    writes: list[Any] = []
    original = store.update_access_key

    def counting(kid: str, **fields: Any) -> None:
        writes.append(fields)
        original(kid, **fields)

    store.update_access_key = counting  # type: ignore[method-assign]
    for _ in range(50):
        access.note_used(key_id)
    clock.now += 59
    access.note_used(key_id)
    assert len(writes) == 1
    clock.now += 1
    access.note_used(key_id)
    assert len(writes) == 2
    assert access.list_keys()[0]["last_used_at"] == clock.now


def test_rotate_makes_a_new_key_and_disables_the_old(access: Access, clock: Clock) -> None:
    access.ensure_root_key()
    old = access.create_key("root", "ci", expires="2h")
    clock.now += 3600
    new = access.rotate_key(old["AccessKeyId"])
    assert new["Principal"] == "root" and new["AccessKeyId"] != old["AccessKeyId"]
    assert new["ExpiresAt"] == pytest.approx(old["ExpiresAt"], abs=60)
    assert access.lookup_secret(old["AccessKeyId"]) is None
    assert access.lookup_secret(new["AccessKeyId"]) == new["SecretAccessKey"]


def test_principals_and_policies_decide(access: Access) -> None:
    access.create_principal("ci")
    key_id = access.create_key("ci")["AccessKeyId"]
    with pytest.raises(AccessDenied, match="user/ci is not authorized to perform"):
        access.authorize(key_id, AccessRequest("apprunner:StartDeployment", SVC))
    access.attach_policy(
        "ci",
        "web-deployer",
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": "apprunner:StartDeployment",
                    "Resource": "*",
                    "Condition": {"StringEquals": {"aws:ResourceTag/team": "web"}},
                }
            ],
        },
    )
    access.authorize(key_id, AccessRequest("apprunner:StartDeployment", SVC, {"team": "web"}))
    with pytest.raises(AccessDenied):
        access.authorize(key_id, AccessRequest("apprunner:StartDeployment", SVC, {"team": "db"}))
    access.attach_policy("ci", "administrator")
    access.attach_policy(
        "ci",
        "no-delete",
        {"Statement": {"Effect": "Deny", "Action": "apprunner:DeleteService", "Resource": "*"}},
    )
    with pytest.raises(AccessDenied, match="explicit deny"):
        access.authorize(key_id, AccessRequest("apprunner:DeleteService", SVC))
    access.detach_policy("ci", "no-delete")
    access.attach_policy(
        "ci",
        "as-text",
        '{"Statement": {"Effect": "Deny", "Action": "*",'
        ' "Resource": "*", "Condition": {"StringEquals":'
        ' {"aws:ResourceTag/team": "db"}}}}',
    )
    with pytest.raises(AccessDenied):
        access.authorize(key_id, AccessRequest("apprunner:DescribeService", SVC, {"team": "db"}))
    access.detach_policy("ci", "as-text")
    access.authorize(key_id, AccessRequest("apprunner:DeleteService", SVC))
    listed = {p["name"]: p for p in access.list_principals()}
    assert listed["ci"]["policies"] == ["administrator", "web-deployer"]  # as-text detached
    assert listed["ci"]["keys"] == [key_id]


def test_bad_policies_and_names_store_nothing(access: Access, store: Store) -> None:
    access.create_principal("ci")
    bad = {"Statement": [{"Effect": "Allow", "Action": "apprunner:Nope", "Resource": "*"}]}
    with pytest.raises(InvalidRequest, match=r"Statement\[0\]\.Action"):
        access.attach_policy("ci", "bad", bad)
    with pytest.raises(InvalidRequest, match="PolicyDocument: not valid JSON"):
        access.attach_policy("ci", "bad", '{"Statement": [')
    with pytest.raises(InvalidRequest, match="ready-made"):
        access.attach_policy("ci", "superuser")
    with pytest.raises(InvalidRequest, match="policy_max_bytes"):
        access.attach_policy(
            "ci",
            "big",
            {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": ["*"] * 2000}]},
        )
    assert store.principal_policies("ci") == []
    with pytest.raises(InvalidRequest, match="Principal"):
        access.create_principal("no spaces")
    with pytest.raises(InvalidRequest, match="already exists"):
        access.create_principal("ci")
    with pytest.raises(ResourceNotFound, match="Principal"):
        access.create_key("nobody")
    with pytest.raises(InvalidRequest, match="Expires"):
        access.create_key("ci", expires="soon")


def test_parse_expiry() -> None:
    assert parse_expiry("30d") == 30 * 86400
    assert parse_expiry("12h") == 43200
    assert parse_expiry("90m") == 5400
    for bad in ("0d", "1y", "-1d", ""):
        with pytest.raises(InvalidRequest):
            parse_expiry(bad)


@pytest.mark.parametrize(
    ("name", "value"), [("key_last_used_interval", "-1"), ("policy_max_bytes", "0")]
)
def test_nonsense_settings_are_refused_by_name(tmp_path: Path, name: str, value: str) -> None:
    settings = load_settings(tmp_path / "none.yaml", environ={f"SLIPWAY_{name.upper()}": value})
    with pytest.raises(InvalidRequest, match=name):
        settings.access_limits.check()


# -- what each call asks for (api/authz.py) ------------------------------------------


def test_every_signed_route_has_an_action() -> None:
    api = Path(authz.__file__).parent
    found = set()
    for path in api.rglob("*.py"):
        for method, route in re.findall(
            r'@(?:app|router)\.(get|post|put|delete)\(\s*"(/slipway/v1[^"]*)"', path.read_text()
        ):
            found.add((method.upper(), route))
    assert found and found == set(authz.ROUTES)


def tags_of(arn: str) -> dict[str, str]:
    return {"team": "web"} if arn == SVC else {}


def test_operation_requests() -> None:
    def req(operation: str, **params: Any) -> AccessRequest:
        return authz.operation_request(
            operation, params, region=REGION, account=ACCOUNT, tags_of=tags_of
        )

    assert req("PauseService", ServiceArn=SVC) == AccessRequest(
        "apprunner:PauseService", SVC, {"team": "web"}, {}
    )
    created = req("CreateService", ServiceName="api", Tags=[{"Key": "team", "Value": "db"}])
    assert created.resource == f"arn:aws:apprunner:{REGION}:{ACCOUNT}:service/api/*"
    assert created.request_tags == {"team": "db"}
    assert req("ListServices").resource == "*"
    tagged = req("TagResource", ResourceArn=SVC, Tags=[{"Key": "team", "Value": "db"}])
    assert (tagged.resource_tags, tagged.request_tags) == ({"team": "web"}, {"team": "db"})


def test_route_requests() -> None:
    def req(method: str, path: str, params: Any = None, query: Any = None, body: bytes = b""):
        return authz.route_request(
            authz.ROUTES[(method, path)],
            params or {},
            query or {},
            body,
            region=REGION,
            account=ACCOUNT,
            tags_of=tags_of,
        )

    rollback = req("POST", "/slipway/v1/rollback", body=f'{{"ServiceArn": "{SVC}"}}'.encode())
    assert (rollback.action, rollback.resource, rollback.resource_tags) == (
        "slipway:Rollback",
        SVC,
        {"team": "web"},
    )
    logs = req("GET", "/slipway/v1/logs", query={"ServiceArn": SVC})
    assert logs.resource == SVC
    assert req("GET", "/slipway/v1/events").resource == "*"
    key = req("POST", "/slipway/v1/keys", body=b'{"Principal": "ci"}')
    assert key.resource == f"arn:aws:slipway:{REGION}:{ACCOUNT}:principal/ci"
    secret = req("PUT", "/slipway/v1/secrets", body=b"not json")
    assert secret.resource == f"arn:aws:slipway:{REGION}:{ACCOUNT}:secret/*"


def test_recover_root_works_on_the_store_and_refuses_without_one(tmp_path: Path) -> None:
    from slipway import keys
    from slipway.errors import AuthError
    from slipway.recovery import recover_root

    settings = load_settings(
        tmp_path / "none.yaml",
        environ={
            "SLIPWAY_DATA_DIR": str(tmp_path / "data"),
            "SLIPWAY_CONFIG_DIR": str(tmp_path / "conf"),
        },
    )
    with pytest.raises(AuthError, match="no slipway database"):
        recover_root(settings)
    vault = Vault(settings.vault_key)
    first = Access(
        Store(settings.db_path, vault), vault, AccessLimits(), region=REGION, account=ACCOUNT
    )
    old_id, _ = first.ensure_root_key() or ("", "")

    key_id = recover_root(settings)
    saved_id, secret, region = keys.read_credentials(settings.credentials_file) or ("", "", "")
    assert (saved_id, region) == (key_id, settings.region) and key_id != old_id
    assert first.lookup_secret(key_id) == secret
    first.authorize(key_id, AccessRequest("slipway:CreateKey", "*"))
