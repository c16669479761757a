"""What App Runner operations answer when they fail: only codes the model lists for
each (walked over the whole model and every error class slipway has), and a failure
nobody expected as a JSON InternalServiceErrorException with its request id."""

from __future__ import annotations

import importlib
import logging
import pkgutil
from pathlib import Path

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

import slipway
from slipway.api.app import error_response
from slipway.api.edge import REQUEST_ID_HEADER, Edge
from slipway.api.observe import audited_call
from slipway.api.validate import operation_errors, operation_names
from slipway.api.wire_errors import COMMON, for_operation
from slipway.edgelimits import EdgeLimits
from slipway.errors import InvalidState, ResourceNotFound, SlipwayError
from slipway.observe.audit import AuditTrail
from slipway.store import Store
from slipway.vault import Vault


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


def _app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(Edge, limits=EdgeLimits())

    @app.exception_handler(SlipwayError)
    async def render(_: Request, exc: SlipwayError):
        return error_response(exc)

    @app.post("/")
    async def broken() -> dict:
        raise KeyError("a bug")

    @app.get("/fine")
    async def fine() -> dict:
        return {}

    return app


def test_an_unexpected_exception_is_a_json_internal_error_with_its_request_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = TestClient(_app())
    with caplog.at_level(logging.ERROR, logger="slipway.api"):
        reply = client.post("/", json={})
    assert reply.status_code == 500
    assert reply.headers["content-type"] == "application/x-amz-json-1.0"
    rid = reply.headers[REQUEST_ID_HEADER]
    body = reply.json()
    assert body["__type"] == "InternalServiceErrorException"
    assert rid in body["Message"] and "a bug" not in body["Message"]
    assert reply.headers["x-amzn-ErrorType"] == "InternalServiceErrorException"
    [record] = [r for r in caplog.records if rid in r.getMessage()]
    assert record.exc_info and record.exc_info[0] is KeyError  # the traceback is logged
    assert client.get("/fine").headers[REQUEST_ID_HEADER] != rid  # the agent still answers


def test_botocore_reads_the_internal_error() -> None:
    """botocore's JSON 1.0 parser turns the answer into the error the model declares."""
    from botocore.parsers import create_parser

    reply = TestClient(_app()).post("/", json={})
    parsed = create_parser("json").parse(
        {"status_code": 500, "headers": dict(reply.headers), "body": reply.content},
        None,
    )
    assert parsed["Error"]["Code"] == "InternalServiceErrorException"
    assert parsed["ResponseMetadata"]["RequestId"] == reply.headers[REQUEST_ID_HEADER]


def test_an_unexpected_exception_is_audited_as_an_internal_error(tmp_path: Path) -> None:
    trail = AuditTrail(Store(tmp_path / "db.sqlite", Vault(tmp_path / "vault.key")))
    app = FastAPI()
    app.add_middleware(Edge, limits=EdgeLimits())

    @app.post("/")
    async def broken(request: Request) -> dict:
        async with audited_call(trail, request, None, "ListServices"):
            raise KeyError("a bug")

    reply = TestClient(app).post("/", json={})
    assert reply.status_code == 500
    [row] = trail.list()
    assert (row["operation"], row["outcome"]) == ("ListServices", "InternalServiceErrorException")
    assert row["request_id"] == reply.headers[REQUEST_ID_HEADER]
