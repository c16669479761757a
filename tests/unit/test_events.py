"""Events in EventBridge shape: envelopes as App Runner sends them, the operation
status code table, events only on change, storage, cursors and routing to targets."""

from __future__ import annotations

import dataclasses
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from slipway.api.observe import events_router
from slipway.errors import SlipwayError, UnrecognizedClient
from slipway.models import ServiceSpec
from slipway.observe.events import (
    OPERATION_MESSAGES,
    OPERATION_STATUS_DETAIL_TYPE,
    SERVICE_STATUS_DETAIL_TYPE,
    EventBus,
    operation_status_code,
)
from slipway.records import Operation, Service
from slipway.store import Store
from slipway.vault import Vault

T0 = 1619697263.0  # 2021-04-29T11:54:23Z, the guide's first example
IMAGE_SPEC = ServiceSpec.from_create(
    {
        "ServiceName": "app",
        "SourceConfiguration": {
            "ImageRepository": {"ImageIdentifier": "hello:1", "ImageRepositoryType": "ECR"}
        },
    }
)
SERVICE = Service(
    id="8fe1e10304f84fd2b0df550fe98a71fa",
    name="my-app",
    arn="arn:aws:apprunner:us-east-2:111122223333:service/my-app/8fe1e10304f84fd2b0df550fe98a71fa",
    hostname="my-app",
    status="RUNNING",
    spec=IMAGE_SPEC,
    created_at=T0,
    updated_at=T0,
)
# The guide's examples (monitor-ev), envelope keys and values that do not vary.
GUIDE_ENVELOPE_KEYS = {
    "version",
    "id",
    "detail-type",
    "source",
    "account",
    "time",
    "region",
    "resources",
    "detail",
}


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "slipway.db", Vault(tmp_path / "vault.key"))


@pytest.fixture()
def bus(store: Store) -> EventBus:
    return EventBus(store, region="us-east-2", account="111122223333", clock=lambda: T0)


def op(op_type: str = "START_DEPLOYMENT", status: str = "PENDING") -> Operation:
    return Operation(
        id=str(uuid.uuid4()),
        service_id=SERVICE.id,
        target_arn=SERVICE.arn,
        type=op_type,
        status=status,
        created_at=T0,
        updated_at=T0,
    )


def test_service_status_change_has_the_guide_shape(bus: EventBus) -> None:
    event = bus.service_status_changed(SERVICE, "OPERATION_IN_PROGRESS", "RUNNING")
    assert event is not None
    assert set(event) == GUIDE_ENVELOPE_KEYS
    assert event["version"] == "0"
    assert uuid.UUID(event["id"]).version == 4
    assert event["detail-type"] == "AppRunner Service Status Change"
    assert event["source"] == "aws.apprunner"
    assert event["account"] == "111122223333"
    assert event["region"] == "us-east-2"
    assert event["time"] == "2021-04-29T11:54:23Z"
    assert event["resources"] == [SERVICE.arn]
    assert event["detail"] == {
        "previousServiceStatus": "OPERATION_IN_PROGRESS",
        "currentServiceStatus": "RUNNING",
        "serviceName": "my-app",
        "serviceId": "8fe1e10304f84fd2b0df550fe98a71fa",
        "message": "Service status is set to RUNNING.",
        "severity": "INFO",
    }


def test_operation_status_change_has_the_guide_shape(bus: EventBus) -> None:
    update = op("UPDATE_SERVICE", "IN_PROGRESS")
    event = bus.operation_status_changed(SERVICE, update, "SUCCEEDED")
    assert event is not None
    assert set(event) == GUIDE_ENVELOPE_KEYS
    assert event["detail-type"] == "AppRunner Service Operation Status Change"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", event["time"])
    detail = event["detail"]
    assert detail.pop("slipway") == {"operationId": update.id, "operationType": "UPDATE_SERVICE"}
    assert detail == {
        "operationStatus": "UpdateServiceCompletedSuccessfully",
        "serviceName": "my-app",
        "serviceId": "8fe1e10304f84fd2b0df550fe98a71fa",
        "message": (
            "Service update completed successfully. New application and configuration is deployed."
        ),
        "severity": "INFO",
    }


def test_update_of_configuration_only_uses_the_tables_second_message(bus: EventBus) -> None:
    event = bus.operation_status_changed(
        SERVICE, op("UPDATE_SERVICE"), "SUCCEEDED", configuration_only=True
    )
    assert event["detail"]["message"] == (
        "Service update completed successfully. New configuration is deployed."
    )


TABLE = [
    ("CREATE_SERVICE", "IN_PROGRESS", "CreateServiceStarted"),
    ("CREATE_SERVICE", "SUCCEEDED", "CreateServiceCompletedSuccessfully"),
    ("CREATE_SERVICE", "FAILED", "CreateServiceFailed"),
    ("DELETE_SERVICE", "IN_PROGRESS", "DeleteServiceStarted"),
    ("DELETE_SERVICE", "SUCCEEDED", "DeleteServiceCompletedSuccessfully"),
    ("DELETE_SERVICE", "FAILED", "DeleteServiceFailed"),
    ("UPDATE_SERVICE", "IN_PROGRESS", "UpdateServiceStarted"),
    ("UPDATE_SERVICE", "SUCCEEDED", "UpdateServiceCompletedSuccessfully"),
    ("UPDATE_SERVICE", "FAILED", "UpdateServiceFailed"),
    ("UPDATE_SERVICE", "ROLLBACK_SUCCEEDED", "UpdateServiceFailed"),
    ("UPDATE_SERVICE", "ROLLBACK_FAILED", "UpdateServiceFailed"),
    ("START_DEPLOYMENT", "IN_PROGRESS", "DeploymentStarted"),
    ("START_DEPLOYMENT", "SUCCEEDED", "DeploymentCompletedSuccessfully"),
    ("START_DEPLOYMENT", "FAILED", "DeploymentFailed"),
    ("START_DEPLOYMENT", "ROLLBACK_SUCCEEDED", "DeploymentFailed"),
    ("PAUSE_SERVICE", "IN_PROGRESS", "PauseServiceStarted"),
    ("PAUSE_SERVICE", "SUCCEEDED", "PauseServiceCompletedSuccessfully"),
    ("PAUSE_SERVICE", "FAILED", "PauseServiceFailed"),
    ("RESUME_SERVICE", "IN_PROGRESS", "ResumeServiceStarted"),
    ("RESUME_SERVICE", "SUCCEEDED", "ResumeServiceCompletedSuccessfully"),
    ("RESUME_SERVICE", "FAILED", "ResumeServiceFailed"),
]


@pytest.mark.parametrize(("op_type", "status", "code"), TABLE)
def test_operation_status_code_table(op_type: str, status: str, code: str) -> None:
    assert operation_status_code(op_type, status) == code
    assert code in OPERATION_MESSAGES


def test_every_code_of_the_guides_table_is_reachable() -> None:
    assert {code for _, _, code in TABLE} == set(OPERATION_MESSAGES)


@pytest.mark.parametrize("status", ["PENDING", "ROLLBACK_IN_PROGRESS"])
def test_steps_without_a_code_send_nothing(bus: EventBus, store: Store, status: str) -> None:
    assert operation_status_code("START_DEPLOYMENT", status) is None
    assert bus.operation_status_changed(SERVICE, op(), status) is None
    assert store.list_events() == []


def test_failures_are_errors(bus: EventBus) -> None:
    failed = bus.operation_status_changed(SERVICE, op("CREATE_SERVICE"), "FAILED", "bad image")
    assert failed["detail"]["severity"] == "ERROR"
    assert failed["detail"]["message"] == "Service creation failed. For details, see service logs."
    assert failed["detail"]["slipway"]["reason"] == "bad image"
    status = bus.service_status_changed(SERVICE, "OPERATION_IN_PROGRESS", "CREATE_FAILED", "why")
    assert status["detail"]["severity"] == "ERROR"
    assert status["detail"]["slipway"] == {"reason": "why"}
    started = bus.operation_status_changed(SERVICE, op("CREATE_SERVICE"), "IN_PROGRESS")
    assert started["detail"]["severity"] == "INFO"


def test_events_only_on_change(bus: EventBus, store: Store) -> None:
    assert bus.service_status_changed(SERVICE, "RUNNING", "RUNNING") is None
    deploy = op("START_DEPLOYMENT", "IN_PROGRESS")
    assert bus.operation_status_changed(SERVICE, deploy, "IN_PROGRESS") is None
    assert store.list_events() == []
    assert bus.operation_status_changed(SERVICE, deploy, "SUCCEEDED") is not None
    assert bus.operation_status_changed(SERVICE, deploy, "SUCCEEDED") is None  # told once
    assert bus.service_status_changed(SERVICE, "RUNNING", "PAUSED") is not None
    assert [e["detail_type"] for e in store.list_events()] == [
        OPERATION_STATUS_DETAIL_TYPE,
        SERVICE_STATUS_DETAIL_TYPE,
    ]


def test_list_follows_a_cursor_and_filters(store: Store) -> None:
    now = [100.0]
    bus = EventBus(store, region="r", account="a", clock=lambda: now[0])
    other = dataclasses.replace(SERVICE, id="other", name="other", arn=SERVICE.arn + "x")
    for i in range(5):
        now[0] = 100.0 + i
        bus.service_status_changed(SERVICE if i % 2 == 0 else other, f"S{i}", f"S{i + 1}")
    rows = bus.list()
    assert [r["body"]["detail"]["currentServiceStatus"] for r in rows] == [
        "S1",
        "S2",
        "S3",
        "S4",
        "S5",
    ]
    assert [r["id"] for r in bus.list(limit=2)] == [rows[3]["id"], rows[4]["id"]]  # newest
    assert [r["id"] for r in bus.list(after_id=rows[1]["id"], limit=2)] == [
        rows[2]["id"],
        rows[3]["id"],
    ]
    assert [r["service_id"] for r in bus.list(SERVICE.id)] == [SERVICE.id] * 3
    assert [r["time"] for r in bus.list(since=103.0)] == [103.0, 104.0]


def add_target(store: Store, target_id: str, pattern: dict[str, Any]) -> None:
    store.insert_notify_target(
        {
            "id": target_id,
            "url": "http://127.0.0.1:9/",
            "pattern": pattern,
            "secret": "sealed",
            "format": "json",
            "created_at": 0.0,
            "source": "api",
        }
    )


def test_deliveries_owed_to_matching_targets_only(store: Store) -> None:
    woken = []
    bus = EventBus(store, region="r", account="a", on_event=lambda: woken.append(1))
    add_target(store, "failures", {"detail": {"severity": ["ERROR"]}})
    add_target(store, "everything", {"source": ["aws.apprunner"]})
    bus.service_status_changed(SERVICE, "OPERATION_IN_PROGRESS", "RUNNING")
    bus.operation_status_changed(SERVICE, op(), "FAILED")
    first, second = (r["id"] for r in store.list_events())
    owed = {(d["target_id"], d["event_id"]) for d in store.list_deliveries()}
    assert owed == {("everything", first), ("everything", second), ("failures", second)}
    assert all(d["status"] == "pending" and d["attempts"] == 0 for d in store.list_deliveries())
    assert len(woken) == 2


def test_no_target_no_wake(bus: EventBus, store: Store) -> None:
    woken = []
    bus.on_event = lambda: woken.append(1)
    bus.service_status_changed(SERVICE, "RUNNING", "PAUSED")
    assert woken == [] and store.list_deliveries() == []


def test_events_router_authenticates_first_and_pages(bus: EventBus) -> None:
    calls: list[str] = []

    async def authenticate(request: Request, body: bytes) -> None:
        calls.append(request.url.path)
        if request.headers.get("authorization") != "ok":
            raise UnrecognizedClient("The security token included in the request is invalid.")

    app = FastAPI()

    @app.exception_handler(SlipwayError)
    async def render(_: Request, exc: SlipwayError) -> JSONResponse:
        return JSONResponse({"__type": exc.code}, status_code=exc.status)

    app.include_router(events_router(bus, authenticate, lambda arn: SERVICE.id))
    bus.service_status_changed(SERVICE, "A", "B")
    bus.service_status_changed(SERVICE, "B", "C")
    client = TestClient(app)
    assert client.get("/slipway/v1/events").status_code == 403
    reply = client.get(
        "/slipway/v1/events", params={"ServiceArn": SERVICE.arn}, headers={"authorization": "ok"}
    ).json()
    assert [e["Event"]["detail"]["currentServiceStatus"] for e in reply["Events"]] == ["B", "C"]
    more = client.get(
        "/slipway/v1/events",
        params={"AfterId": reply["NextAfterId"]},
        headers={"authorization": "ok"},
    ).json()
    assert more == {"Events": [], "NextAfterId": reply["NextAfterId"]}
    bad = client.get("/slipway/v1/events", params={"Limit": "x"}, headers={"authorization": "ok"})
    assert bad.status_code == 400
    assert calls == ["/slipway/v1/events"] * 4


def test_an_existing_database_gains_the_observe_tables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import slipway.store.schema as store_module

    every = list(store_module.MIGRATIONS)
    monkeypatch.setattr(store_module, "MIGRATIONS", every[:2])
    vault = Vault(tmp_path / "vault.key")
    assert Store(tmp_path / "old.db", vault).schema_version == 2
    monkeypatch.setattr(store_module, "MIGRATIONS", every)
    upgraded = Store(tmp_path / "old.db", vault)
    assert upgraded.schema_version == len(every)
    assert {"events", "notify_targets", "deliveries_out", "audit"} <= set(upgraded.db.table_names())
