"""What App Runner operations answer when they fail: only codes the model lists for
each (walked over the whole model and every error class slipway has), and a failure
nobody expected as a JSON InternalServiceErrorException with its request id."""

from __future__ import annotations

import importlib
import logging
import pkgutil
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.parsers import create_parser
from fastapi.testclient import TestClient

import slipway
from slipway.access import Access
from slipway.access_limits import AccessLimits
from slipway.api import handlers
from slipway.api.app import create_app
from slipway.api.edge import REQUEST_ID_HEADER
from slipway.api.validate import operation_errors, operation_names
from slipway.api.wire_errors import COMMON, for_operation
from slipway.errors import InvalidState, ResourceNotFound, SlipwayError
from slipway.observe.audit import AuditTrail
from slipway.store import Store
from slipway.vault import Vault
from testkit.apiagent import app_agent


def _every_error_class() -> list[type[SlipwayError]]:
    """SlipwayError and every subclass anywhere in the package: what a handler can raise
    (anything else is answered as an internal error)."""
    for info in pkgutil.walk_packages(slipway.__path__, "slipway."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
    found, todo = [], [SlipwayError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo += cls.__subclasses__()
    return found


ERROR_CLASSES = _every_error_class()


def test_the_walk_finds_the_error_tree() -> None:
    names = {cls.__name__ for cls in ERROR_CLASSES}
    assert {"InvalidRequest", "InvalidState", "ResourceNotFound", "QuotaExceeded"} <= names
    assert {"RequestTooLarge", "Throttled", "UnknownOperation", "GitHubError"} <= names


@pytest.mark.parametrize("operation", operation_names())
def test_every_error_an_operation_answers_is_one_the_model_lists(operation: str) -> None:
    listed = operation_errors(operation)
    assert "InternalServiceErrorException" in listed  # what unexpected failures answer
    assert "InvalidRequestException" in listed  # what unlisted client errors answer
    answered = set()
    for cls in ERROR_CLASSES:
        exc = cls.__new__(cls)
        SlipwayError.__init__(exc, "what went wrong")
        wire = for_operation(operation, exc)
        assert wire.message == "what went wrong"
        assert (wire.status >= 500) == (exc.status >= 500)
        answered.add(wire.code)
    assert answered - COMMON <= listed, operation


def test_common_errors_are_the_ones_answered_before_any_operation_runs() -> None:
    assert {
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "MissingAuthenticationTokenException",
        "ThrottlingException",
        "RequestEntityTooLargeException",
        "UnknownOperationException",
    } == COMMON


def test_an_unlisted_code_becomes_invalid_request_with_its_message() -> None:
    paused = InvalidState("Service web is paused; resume it to deploy")
    assert "InvalidStateException" not in operation_errors("StartDeployment")
    wire = for_operation("StartDeployment", paused)
    assert (wire.code, wire.status, wire.message) == (
        "InvalidRequestException",
        400,
        paused.message,
    )
    missing = ResourceNotFound("Auto scaling configuration x not found")
    assert for_operation("CreateService", missing).code == "InvalidRequestException"
    assert for_operation("DescribeService", missing) is missing  # listed: kept


@dataclass
class Api:
    """The real app over a real store and access keys; the parts the calls below never
    reach are left out. ``call`` signs with the root key as boto3 would."""

    client: TestClient
    audit: AuditTrail
    credentials: Credentials

    def call(self, operation: str, body: bytes = b"{}") -> httpx.Response:
        request = AWSRequest(
            method="POST",
            url="http://testserver/",
            data=body,
            headers={
                "X-Amz-Target": f"AppRunner.{operation}",
                "Content-Type": "application/x-amz-json-1.0",
            },
        )
        SigV4Auth(self.credentials, "apprunner", "us-east-1").add_auth(request)
        return self.client.post("/", content=body, headers=dict(request.headers))


@pytest.fixture
def api(tmp_path: Path) -> Api:
    vault = Vault(tmp_path / "vault.key")
    store = Store(tmp_path / "db.sqlite", vault)
    access = Access(store, vault, AccessLimits(), region="us-east-1", account="000000000000")
    created = access.ensure_root_key()
    assert created is not None
    audit = AuditTrail(store)
    agent = app_agent(tmp_path, store, access, audit)
    return Api(TestClient(create_app(agent)), audit, Credentials(*created))  # type: ignore[arg-type]


def _raises(exc: Exception):
    def handler(rules, params):
        raise exc

    return handler


def test_an_unexpected_exception_is_a_json_internal_error_with_its_request_id(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(handlers.HANDLERS, "ListServices", _raises(KeyError("a bug")))
    with caplog.at_level(logging.ERROR, logger="slipway.api"):
        reply = api.call("ListServices")
    assert reply.status_code == 500
    assert reply.headers["content-type"] == "application/x-amz-json-1.0"
    rid = reply.headers[REQUEST_ID_HEADER]
    body = reply.json()
    assert body["__type"] == "InternalServiceErrorException"
    assert rid in body["Message"] and "a bug" not in body["Message"]
    assert reply.headers["x-amzn-ErrorType"] == "InternalServiceErrorException"
    [record] = [r for r in caplog.records if rid in r.getMessage()]
    assert record.exc_info and record.exc_info[0] is KeyError  # the traceback is logged
    [row] = api.audit.list()  # and the audit trail says so
    assert (row["operation"], row["outcome"], row["request_id"]) == (
        "ListServices",
        "InternalServiceErrorException",
        rid,
    )
    # botocore's JSON 1.0 parser reads it as the error the model declares
    parsed = create_parser("json").parse(
        {"status_code": 500, "headers": dict(reply.headers), "body": reply.content}, None
    )
    assert parsed["Error"]["Code"] == "InternalServiceErrorException"
    assert parsed["ResponseMetadata"]["RequestId"] == rid
    after = api.client.get("/no-such-route")  # the agent answers on, each with its own id
    assert after.status_code == 404 and after.headers[REQUEST_ID_HEADER] != rid


def test_an_unlisted_error_goes_out_as_one_the_operation_lists(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    paused = InvalidState("Service web is paused; resume it to deploy")
    monkeypatch.setitem(handlers.HANDLERS, "StartDeployment", _raises(paused))
    arn = "arn:aws:apprunner:us-east-1:000000000000:service/web/" + "0" * 32
    reply = api.call("StartDeployment", f'{{"ServiceArn": "{arn}"}}'.encode())
    assert (reply.status_code, reply.json()) == (
        400,
        {"__type": "InvalidRequestException", "Message": paused.message},
    )
    assert api.audit.list()[0]["outcome"] == "InvalidRequestException"
