"""The audit trail: redaction as CloudTrail does it (botocore's sensitive members, plus
credentials by name), storage and its API, and planted secrets that never reach disk."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from slipway.api.observe import audit_router
from slipway.errors import SlipwayError, UnrecognizedClient
from slipway.observe.audit import HIDDEN, AuditTrail, redact
from slipway.store import Store
from slipway.vault import Vault

PLANTED = {
    "start": "PLANTED-start-cmd-7f3a",
    "build": "PLANTED-build-cmd-91bc",
    "env": "PLANTED-env-value-5d2e",
    "secret_arn": "PLANTED-secret-arn-c0de",
    "token": "PLANTED-github-token-aa11",
    "key": "PLANTED-private-key-bb22",
    "password": "PLANTED-registry-password-cc33",
    "notify": "PLANTED-notify-secret-dd44",
}


def code_service() -> dict[str, Any]:
    """The guide's CloudTrail example request (CreateService from source code)."""
    return {
        "ServiceName": "python-test",
        "SourceConfiguration": {
            "CodeRepository": {
                "RepositoryUrl": "https://github.com/github-user/python-hello",
                "SourceCodeVersion": {"Type": "BRANCH", "Value": "main"},
                "CodeConfiguration": {
                    "ConfigurationSource": "API",
                    "CodeConfigurationValues": {
                        "Runtime": "PYTHON_3",
                        "BuildCommand": PLANTED["build"],
                        "StartCommand": PLANTED["start"],
                        "Port": "8080",
                        "RuntimeEnvironmentVariables": {"NAME": PLANTED["env"]},
                    },
                },
            },
            "AutoDeploymentsEnabled": True,
            "AuthenticationConfiguration": {
                "ConnectionArn": "arn:aws:apprunner:us-east-2:123456789012:connection/c/e76"
            },
        },
        "HealthCheckConfiguration": {"Protocol": "HTTP"},
        "InstanceConfiguration": {"Cpu": "256", "Memory": "1024"},
    }


def image_service() -> dict[str, Any]:
    return {
        "ServiceName": "web",
        "SourceConfiguration": {
            "ImageRepository": {
                "ImageIdentifier": "127.0.0.1:5000/web:latest",
                "ImageRepositoryType": "ECR",
                "ImageConfiguration": {
                    "Port": "8080",
                    "StartCommand": PLANTED["start"],
                    "RuntimeEnvironmentVariables": {
                        "LOG_LEVEL": "debug",
                        "DB_PASSWORD": PLANTED["env"],
                    },
                    "RuntimeEnvironmentSecrets": {"API": PLANTED["secret_arn"]},
                },
            }
        },
    }


def test_create_service_from_code_is_hidden_as_cloudtrail_shows() -> None:
    out = redact("CreateService", code_service())
    values = out["SourceConfiguration"]["CodeRepository"]["CodeConfiguration"][
        "CodeConfigurationValues"
    ]
    assert values == {
        "Runtime": "PYTHON_3",
        "BuildCommand": HIDDEN,
        "StartCommand": HIDDEN,
        "Port": "8080",
        "RuntimeEnvironmentVariables": HIDDEN,
    }
    # Everything else is kept as sent.
    expected = code_service()
    expected["SourceConfiguration"]["CodeRepository"]["CodeConfiguration"][
        "CodeConfigurationValues"
    ] = values
    assert out == expected


def test_image_configuration_secrets_hidden() -> None:
    out = redact("CreateService", image_service())
    conf = out["SourceConfiguration"]["ImageRepository"]["ImageConfiguration"]
    assert conf == {
        "Port": "8080",
        "StartCommand": HIDDEN,
        "RuntimeEnvironmentVariables": HIDDEN,
        "RuntimeEnvironmentSecrets": HIDDEN,
    }
    assert out["SourceConfiguration"]["ImageRepository"]["ImageIdentifier"] == (
        "127.0.0.1:5000/web:latest"
    )


def test_update_service_follows_the_model_too() -> None:
    params = {"ServiceArn": "arn:aws:apprunner:r:0:service/web/1", **image_service()}
    del params["ServiceName"]
    out = redact("UpdateService", params)
    image = out["SourceConfiguration"]["ImageRepository"]
    assert image["ImageConfiguration"]["StartCommand"] == HIDDEN
    assert out["ServiceArn"] == params["ServiceArn"]


def test_redact_leaves_its_input_alone_and_keeps_nulls() -> None:
    params = image_service()
    before = copy.deepcopy(params)
    redact("CreateService", params)
    assert params == before
    params["SourceConfiguration"]["ImageRepository"]["ImageConfiguration"]["StartCommand"] = None
    conf = redact("CreateService", params)["SourceConfiguration"]["ImageRepository"]
    assert conf["ImageConfiguration"]["StartCommand"] is None


def test_operations_without_secrets_are_untouched() -> None:
    params = {"ServiceArn": "arn:aws:apprunner:r:0:service/web/1", "MaxResults": 5}
    assert redact("ListOperations", params) == params
    tags = {"ResourceArn": "arn", "Tags": [{"Key": "password", "Value": "not-a-secret"}]}
    assert redact("TagResource", tags) == tags


def test_credentials_by_name_for_slipway_endpoints() -> None:
    assert redact("slipway:AuthorizeConnection", {"Token": PLANTED["token"], "AppId": 7}) == {
        "Token": HIDDEN,
        "AppId": 7,
    }
    assert redact(
        "slipway:AuthorizeConnection",
        {"AppId": 7, "PrivateKey": PLANTED["key"], "InstallationId": 9},
    ) == {"AppId": 7, "PrivateKey": HIDDEN, "InstallationId": 9}
    assert redact("slipway:RegistryLogin", {"Username": "me", "Password": PLANTED["password"]}) == {
        "Username": "me",
        "Password": HIDDEN,
    }
    notify = {"Url": "https://x/", "Pattern": {"source": ["aws.apprunner"]}, "Secret": "s"}
    assert redact("slipway:AddNotifyTarget", notify)["Secret"] == HIDDEN


@pytest.mark.parametrize(
    "name",
    [
        "DB_PASSWORD",
        "api_key",
        "GITHUB_TOKEN",
        "AWS_SECRET_ACCESS_KEY",
        "Authorization",
        "PRIVATE_PEM",
        "SSL_CERT",
        "GOOGLE_CREDENTIALS",
        "mysql_passwd",
    ],
)
def test_secret_looking_environment_names_hidden_outside_the_model(name: str) -> None:
    env = {name: PLANTED["env"], "PORT": "8080", "NODE_ENV": "production", "LOG_LEVEL": "x"}
    out = redact("slipway:Something", {"Nested": [{"RuntimeEnvironmentVariables": env}]})
    assert out["Nested"][0]["RuntimeEnvironmentVariables"] == {
        name: HIDDEN,
        "PORT": "8080",
        "NODE_ENV": "production",
        "LOG_LEVEL": "x",
    }


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "slipway.db", Vault(tmp_path / "vault.key"))


def test_planted_secrets_never_stored(tmp_path: Path, store: Store) -> None:
    trail = AuditTrail(store)
    calls = [
        ("CreateService", code_service()),
        ("CreateService", image_service()),
        ("slipway:AuthorizeConnection", {"Token": PLANTED["token"], "PrivateKey": PLANTED["key"]}),
        ("slipway:RegistryLogin", {"Username": "me", "Password": PLANTED["password"]}),
        ("slipway:AddNotifyTarget", {"Url": "http://x/", "Secret": PLANTED["notify"]}),
    ]
    for n, (operation, params) in enumerate(calls):
        trail.record(1000.0 + n, "AKIDEXAMPLE", "127.0.0.1", "Boto3/1.34", operation, params, "OK")
    rows = trail.list()
    assert [r["operation"] for r in rows] == [c[0] for c in calls]
    dumped = json.dumps(rows)
    store.db.execute("PRAGMA wal_checkpoint(FULL)")
    raw = "".join(p.read_bytes().decode("latin-1") for p in tmp_path.glob("slipway.db*"))
    for value in PLANTED.values():
        assert value not in dumped
        assert value not in raw
    assert HIDDEN in dumped
    assert rows[0]["params"]["ServiceName"] == "python-test"


def test_record_and_list(store: Store) -> None:
    now = [50.0]
    trail = AuditTrail(store, clock=lambda: now[0])
    first = trail.record(None, "AKID1", "10.0.0.1", "aws-cli/2", "ListServices", {}, "OK", "req-1")
    now[0] = 60.0
    trail.record(None, None, None, "x" * 5000, "DeleteService", None, "ResourceNotFoundException")
    rows = trail.list()
    assert [(r["time"], r["outcome"]) for r in rows] == [
        (50.0, "OK"),
        (60.0, "ResourceNotFoundException"),
    ]
    assert rows[0] == {
        "id": first,
        "time": 50.0,
        "access_key_id": "AKID1",
        "source_ip": "10.0.0.1",
        "user_agent": "aws-cli/2",
        "operation": "ListServices",
        "params": {},
        "outcome": "OK",
        "request_id": "req-1",
    }
    assert len(rows[1]["user_agent"]) == 512 and rows[1]["params"] == {}
    assert [r["time"] for r in trail.list(since=55.0)] == [60.0]
    assert [r["time"] for r in trail.list(after_id=first)] == [60.0]
    assert [r["time"] for r in trail.list(limit=1)] == [60.0]


def test_audit_api(store: Store) -> None:
    trail = AuditTrail(store)
    trail.record(10.0, "AKID", "127.0.0.1", "ua", "StartDeployment", {"ServiceArn": "a"}, "OK")
    trail.record(20.0, "AKID", "127.0.0.1", "ua", "PauseService", {"ServiceArn": "a"}, "OK")
    seen: list[str] = []

    async def authenticate(request: Request, body: bytes) -> None:
        seen.append(request.url.path)
        if request.headers.get("authorization") != "ok":
            raise UnrecognizedClient("The security token included in the request is invalid.")

    app = FastAPI()

    @app.exception_handler(SlipwayError)
    async def render(_: Request, exc: SlipwayError) -> JSONResponse:
        return JSONResponse({"__type": exc.code, "Message": exc.message}, status_code=exc.status)

    app.include_router(audit_router(trail, authenticate))
    client = TestClient(app, headers={"authorization": "ok"})
    reply = client.get("/slipway/v1/audit", params={"Since": "15"}).json()
    assert reply["Events"] == [
        {
            "Id": reply["NextAfterId"],
            "Time": 20.0,
            "AccessKeyId": "AKID",
            "SourceIp": "127.0.0.1",
            "UserAgent": "ua",
            "Operation": "PauseService",
            "Params": {"ServiceArn": "a"},
            "Outcome": "OK",
            "RequestId": None,
        }
    ]
    everything = client.get("/slipway/v1/audit").json()["Events"]
    assert [e["Operation"] for e in everything] == ["StartDeployment", "PauseService"]
    assert client.get("/slipway/v1/audit", params={"Since": "soon"}).status_code == 400
    assert client.get("/slipway/v1/audit", headers={"authorization": "no"}).status_code == 403
    assert seen == ["/slipway/v1/audit"] * 4


def test_webhook_urls_keep_only_their_origin() -> None:
    from slipway.observe.audit import HIDDEN, redact

    slack = redact("slipway:AddNotifyTarget", {"Url": "https://hooks.slack.com/services/T/B/X"})
    assert slack == {"Url": f"https://hooks.slack.com/{HIDDEN}"}
    assert redact("x", {"Url": "http://user:pw@127.0.0.1:9000/"}) == {
        "Url": "http://127.0.0.1:9000/"
    }
    assert redact("x", {"Url": "not a url"}) == {"Url": HIDDEN}
    assert redact("x", {"Url": "http://h:abc/T/B/secret"}) == {"Url": f"http://h:abc/{HIDDEN}"}
    assert redact("x", {"Url": "http://[::1:8080/x"}) == {"Url": HIDDEN}
    assert redact("x", {"Url": "http://[::1]:8080/x"}) == {"Url": f"http://[::1]:8080/{HIDDEN}"}
