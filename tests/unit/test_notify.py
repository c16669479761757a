"""Notifications against a real HTTP receiver on loopback: signatures, order per service
through failures, timeouts, redirects, giving up, restarts, Slack, targets and their API,
and no secret in any stored row."""

from __future__ import annotations

import contextlib
import json
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from slipway.api.observe import notify_router
from slipway.api.sigv4 import Caller
from slipway.errors import InvalidRequest, ResourceNotFound, SlipwayError, UnrecognizedClient
from slipway.jobs import Jobs
from slipway.models import ServiceSpec
from slipway.observe.audit import AuditTrail
from slipway.observe.events import EventBus
from slipway.observe.notify import Notifier, parse_config_targets, sign
from slipway.outbound import OutboundPolicy
from slipway.records import Operation, Service
from slipway.store import Store
from slipway.vault import Vault
from testkit.clock import Clock

SECRET = "s3cret-for-tests-0123456789"
# The receivers of these tests listen on loopback, which targets may not name unless allowed.
LOOPBACK = OutboundPolicy(allow=("127.0.0.1",))
EVERYTHING = {"source": ["aws.apprunner"]}


IMAGE_SPEC = ServiceSpec.from_create(
    {
        "ServiceName": "app",
        "SourceConfiguration": {
            "ImageRepository": {"ImageIdentifier": "hello:1", "ImageRepositoryType": "ECR"}
        },
    }
)


def service(name: str) -> Service:
    sid = f"{name}-id"
    return Service(
        id=sid,
        name=name,
        arn=f"arn:aws:apprunner:r:000000000000:service/{name}/{sid}",
        hostname=name,
        status="RUNNING",
        spec=IMAGE_SPEC,
        created_at=0.0,
        updated_at=0.0,
    )


A, B = service("alpha"), service("beta")


class Receiver:
    """A webhook receiver on loopback that answers as ``respond(n)`` says for its n-th
    request (0-based) and records every request with the status it answered."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.respond: Callable[[int], tuple[int, dict[str, str]]] = lambda n: (200, {})
        self.delay = 0.0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    n = len(receiver.requests)
                    status, headers = receiver.respond(n)
                    receiver.requests.append(
                        {
                            "path": self.path,
                            "headers": dict(self.headers.items()),
                            "body": body,
                            "status": status,
                        }
                    )
                time.sleep(receiver.delay)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", "4")
                self.end_headers()
                self.wfile.write(b"nope" if status >= 300 else b"okay")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def events(self, service_id: str | None = None) -> list[tuple[str, int, int]]:
        """(event id, attempt, answered status) in arrival order, for one service."""
        out = []
        for r in self.requests:
            body = json.loads(r["body"])
            if service_id is None or body["detail"]["serviceId"] == service_id:
                out.append(
                    (
                        r["headers"]["X-Slipway-Event-Id"],
                        int(r["headers"]["X-Slipway-Delivery-Attempt"]),
                        r["status"],
                    )
                )
        return out


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "slipway.db", Vault(tmp_path / "vault.key"))


@pytest.fixture()
def vault(tmp_path: Path) -> Vault:
    return Vault(tmp_path / "vault.key")


def make(store: Store, vault: Vault, **kwargs: Any) -> tuple[Notifier, EventBus]:
    notifier = Notifier(store, vault, outbound=LOOPBACK, interval=0.05, **kwargs)
    bus = EventBus(store, region="us-east-1", account="000000000000", on_event=notifier.wake)
    return notifier, bus


@contextlib.contextmanager
def scheduled(notifier: Notifier) -> Iterator[None]:
    """The notifier's delivery job running on a scheduler of its own."""
    jobs = Jobs()
    notifier.schedule(jobs)
    jobs.start()
    try:
        yield
    finally:
        jobs.stop()


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def all_rows_text(store: Store, db_path: Path) -> str:
    """Every row of every table, and the raw database files, as one string."""
    parts = []
    for table in store.db.table_names():
        parts += [repr(row) for row in store.db[table].rows]
    for path in db_path.parent.glob(db_path.name + "*"):
        parts.append(path.read_bytes().decode("latin-1"))
    return "\n".join(parts)


# -- delivery ------------------------------------------------------------------------


def test_signed_delivery_of_the_event(store: Store, vault: Vault, receiver: Receiver) -> None:
    notifier, bus = make(store, vault)
    target = notifier.add_target(receiver.url, EVERYTHING, secret=SECRET)
    assert target["secret"] == SECRET
    event = bus.service_status_changed(A, "OPERATION_IN_PROGRESS", "RUNNING")
    assert notifier.run_once() == 1
    (request,) = receiver.requests
    assert request["path"] == "/hook"
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["headers"]["X-Slipway-Signature"] == sign(SECRET, request["body"])
    assert request["headers"]["X-Slipway-Event-Id"] == event["id"]
    assert request["headers"]["X-Slipway-Delivery-Attempt"] == "1"
    assert json.loads(request["body"]) == event
    (row,) = store.list_deliveries()
    assert (row["status"], row["attempts"], row["last_error"]) == ("delivered", 1, None)
    assert notifier.run_once() == 0


def test_generated_secret_signs(store: Store, vault: Vault, receiver: Receiver) -> None:
    notifier, bus = make(store, vault)
    secret = notifier.add_target(receiver.url, EVERYTHING)["secret"]
    assert len(secret) >= 32
    bus.service_status_changed(A, "RUNNING", "PAUSED")
    notifier.run_once()
    (request,) = receiver.requests
    assert request["headers"]["X-Slipway-Signature"] == sign(secret, request["body"])


def test_only_matching_events_are_sent(store: Store, vault: Vault, receiver: Receiver) -> None:
    notifier, bus = make(store, vault)
    notifier.add_target(receiver.url, {"detail": {"severity": ["ERROR"]}}, secret=SECRET)
    bus.service_status_changed(A, "OPERATION_IN_PROGRESS", "RUNNING")
    failed = bus.service_status_changed(B, "OPERATION_IN_PROGRESS", "CREATE_FAILED")
    notifier.run_once()
    assert [e for e, _, _ in receiver.events()] == [failed["id"]]


def test_order_per_service_kept_through_failures(
    store: Store, vault: Vault, receiver: Receiver
) -> None:
    receiver.respond = lambda n: (500 if n < 4 else 200, {})
    notifier, bus = make(store, vault, backoff_base=0.05)
    notifier.add_target(receiver.url, EVERYTHING, secret=SECRET)
    sent: dict[str, list[str]] = {A.id: [], B.id: []}
    for i in range(3):
        for svc in (A, B):
            sent[svc.id].append(bus.service_status_changed(svc, f"S{i}", f"S{i + 1}")["id"])
    with scheduled(notifier):
        wait_for(lambda: not store.list_deliveries(status="pending"))
    assert {d["status"] for d in store.list_deliveries()} == {"delivered"}
    for svc in (A, B):
        seen = receiver.events(svc.id)
        # Each event is tried until it succeeds, and only then does the next go out.
        order = []
        for event_id, _attempt, status in seen:
            if not order or order[-1][0] != event_id:
                assert not order or order[-1][1] == 200, f"{event_id} sent before its elder"
                order.append([event_id, status])
            order[-1][1] = status
        assert [e for e, _ in order] == sent[svc.id]
        attempts = [a for e, a, _ in seen if e == sent[svc.id][0]]
        assert attempts == list(range(1, len(attempts) + 1))
    assert sum(1 for r in receiver.requests if r["status"] == 500) == 4


def test_timeout_is_a_failure_retried_later(store: Store, vault: Vault, receiver: Receiver) -> None:
    receiver.delay = 1.0
    notifier, bus = make(store, vault, timeout=0.2)
    notifier.add_target(receiver.url, EVERYTHING, secret=SECRET)
    bus.service_status_changed(A, "RUNNING", "PAUSED")
    before = time.time()
    notifier.run_once()
    assert time.time() - before < 0.9
    (row,) = store.list_deliveries()
    assert row["status"] == "pending" and row["attempts"] == 1
    assert row["last_error"] == "no answer within 0.2 s"
    assert before + 0.5 <= row["next_attempt_at"] <= before + 1.5  # 1 s, less jitter
    assert notifier.run_once() == 0  # not due yet


def test_redirect_is_a_failure_not_followed(store: Store, vault: Vault, receiver: Receiver) -> None:
    moved = receiver.url.replace("/hook", "/moved")
    receiver.respond = lambda n: (301, {"Location": moved})
    notifier, bus = make(store, vault)
    notifier.add_target(receiver.url, EVERYTHING, secret=SECRET)
    bus.service_status_changed(A, "RUNNING", "PAUSED")
    notifier.run_once()
    assert [r["path"] for r in receiver.requests] == ["/hook"]
    (row,) = store.list_deliveries()
    assert row["status"] == "pending"
    assert row["last_error"] == (
        f"HTTP 301 redirect to {moved} not followed; configure the final URL"
    )


def test_unreachable_target(store: Store, vault: Vault) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    notifier, bus = make(store, vault)
    notifier.add_target(url, EVERYTHING, secret=SECRET)
    bus.service_status_changed(A, "RUNNING", "PAUSED")
    notifier.run_once()
    (row,) = store.list_deliveries()
    assert row["status"] == "pending" and row["last_error"].startswith("ConnectError")


def test_gives_up_after_max_age_then_the_chain_moves_on(
    store: Store, vault: Vault, receiver: Receiver
) -> None:
    receiver.respond = lambda n: (500, {})
    clock = Clock(time.time() + 1)  # the events' own times are the wall clock's
    notifier, bus = make(store, vault, max_age=60, backoff_base=1, clock=clock)
    notifier.add_target(receiver.url, EVERYTHING, secret=SECRET)
    first = bus.service_status_changed(A, "RUNNING", "PAUSED")
    assert notifier.run_once() == 1
    assert notifier.run_once() == 0  # backing off
    clock.now += 5
    assert notifier.run_once() == 1
    assert store.list_deliveries(status="failed") == []
    clock.now += 60  # past max_age: this attempt is the last
    assert notifier.run_once() == 1
    (failed,) = store.list_deliveries(status="failed")
    assert (failed["attempts"], failed["last_error"]) == (3, "HTTP 500: nope")
    tried = len(receiver.requests)
    receiver.respond = lambda n: (200, {})
    second = bus.service_status_changed(A, "PAUSED", "RUNNING")
    assert notifier.run_once() == 1
    assert not store.list_deliveries(status="pending")
    assert len(receiver.requests) == tried + 1  # the failed one is not tried again
    assert receiver.events()[-1][0] == second["id"]
    assert {e for e, _, _ in receiver.events()} == {first["id"], second["id"]}


def test_pending_deliveries_survive_a_restart(
    tmp_path: Path, store: Store, vault: Vault, receiver: Receiver
) -> None:
    receiver.respond = lambda n: (503 if n == 0 else 200, {})
    notifier, bus = make(store, vault)
    notifier.add_target(receiver.url, EVERYTHING, secret=SECRET)
    first = bus.service_status_changed(A, "OPERATION_IN_PROGRESS", "RUNNING")
    second = bus.service_status_changed(A, "RUNNING", "PAUSED")
    notifier.run_once()  # the first attempt fails; the agent then "stops"
    assert [(d["status"], d["attempts"]) for d in store.list_deliveries()] == [
        ("pending", 1),
        ("pending", 0),
    ]
    again_vault = Vault(tmp_path / "vault.key")
    again = Notifier(
        Store(tmp_path / "slipway.db", again_vault), again_vault, outbound=LOOPBACK, interval=0.05
    )
    with scheduled(again):
        wait_for(lambda: not again.store.list_deliveries(status="pending"))
    assert [(e, a) for e, a, _ in receiver.events()] == [
        (first["id"], 1),
        (first["id"], 2),
        (second["id"], 1),
    ]
    assert receiver.requests[1]["headers"]["X-Slipway-Signature"] == sign(
        SECRET, receiver.requests[1]["body"]
    )


def test_slack_format(store: Store, vault: Vault, receiver: Receiver) -> None:
    notifier, bus = make(store, vault)
    notifier.add_target(receiver.url, EVERYTHING, secret=SECRET, format="slack")
    deploy = Operation(
        id="op-1",
        service_id=A.id,
        target_arn=A.arn,
        type="START_DEPLOYMENT",
        status="IN_PROGRESS",
        created_at=0.0,
        updated_at=0.0,
    )
    bus.operation_status_changed(A, deploy, "FAILED", "image not found")
    notifier.run_once()
    (request,) = receiver.requests
    payload = json.loads(request["body"])
    assert list(payload) == ["text"]
    text = payload["text"]
    assert "*alpha*" in text
    assert "Deployment failed. For details, see service logs." in text
    assert "image not found" in text and "DeploymentFailed" in text
    assert request["headers"]["X-Slipway-Signature"] == sign(SECRET, request["body"])


# -- targets ---------------------------------------------------------------------------


def test_add_target_checks_its_input(store: Store, vault: Vault) -> None:
    notifier = Notifier(store, vault, outbound=LOOPBACK)
    with pytest.raises(InvalidRequest, match="url: 'ftp://x/' is not an http"):
        notifier.add_target("ftp://x/", EVERYTHING)
    with pytest.raises(InvalidRequest, match="url: 'http://' is not an http"):
        notifier.add_target("http://", EVERYTHING)
    with pytest.raises(InvalidRequest, match="pattern.detail.severity: expected a list"):
        notifier.add_target("http://x/", {"detail": {"severity": "ERROR"}})
    with pytest.raises(InvalidRequest, match="pattern: not valid JSON"):
        notifier.add_target("http://x/", "{nope")
    with pytest.raises(InvalidRequest, match="format: 'xml' is not one of json, slack"):
        notifier.add_target("http://x/", EVERYTHING, format="xml")
    with pytest.raises(InvalidRequest, match="secret: must be a string of at least 16"):
        notifier.add_target("http://x/", EVERYTHING, secret="short")
    assert store.list_notify_targets() == []
    target = notifier.add_target("https://x/", json.dumps(EVERYTHING))
    assert target["pattern"] == EVERYTHING and target["source"] == "api"


def test_list_and_remove_targets(store: Store, vault: Vault) -> None:
    notifier, bus = make(store, vault)
    target = notifier.add_target("http://127.0.0.1:9/", EVERYTHING, secret=SECRET)
    (listed,) = notifier.list_targets()
    assert "secret" not in listed and listed["id"] == target["id"]
    bus.service_status_changed(A, "RUNNING", "PAUSED")
    assert len(store.list_deliveries()) == 1
    notifier.remove_target(target["id"])
    assert notifier.list_targets() == [] and store.list_deliveries() == []
    with pytest.raises(ResourceNotFound):
        notifier.remove_target(target["id"])


def test_config_targets_sync(store: Store, vault: Vault, receiver: Receiver) -> None:
    config = [
        {"url": receiver.url, "pattern": EVERYTHING, "secret": SECRET},
        {"url": "https://hooks.slack.example/T/B/x", "pattern": EVERYTHING, "format": "slack"},
    ]
    first = Notifier(store, vault, outbound=LOOPBACK, config_targets=config)
    first.sync_config_targets()
    targets = first.list_targets()
    assert [(t["source"], t["format"]) for t in targets] == [
        ("config", "json"),
        ("config", "slack"),
    ]
    with pytest.raises(InvalidRequest, match="comes from the config file"):
        first.remove_target(targets[0]["id"])
    # Same file again: same ids; a target dropped from the file goes, with its deliveries.
    second = Notifier(store, vault, outbound=LOOPBACK, config_targets=config[:1])
    second.sync_config_targets()
    assert [t["id"] for t in second.list_targets()] == [targets[0]["id"]]
    EventBus(store, region="r", account="a").service_status_changed(A, "RUNNING", "PAUSED")
    second.run_once()
    (request,) = receiver.requests
    assert request["headers"]["X-Slipway-Signature"] == sign(SECRET, request["body"])


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"url": "x"}, "notify_targets: expected a list"),
        ([{"url": "http://x/"}], "notify_targets[0].pattern: expected a JSON object"),
        ([{"url": "gopher://x/", "pattern": EVERYTHING}], "notify_targets[0].url"),
        ([{"url": "http://x/", "pattern": EVERYTHING, "colour": 1}], "unknown key(s) colour"),
        ([{"url": "http://x/", "pattern": {"a": "b"}}], "notify_targets[0].pattern.a: expected"),
        ('[{"url": "http://x/", "pattern": {}}]', "notify_targets[0].pattern: must name"),
    ],
)
def test_config_targets_are_checked(value: Any, message: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_config_targets(value)
    assert message in caught.value.message


def test_config_targets_from_json_text() -> None:
    (target,) = parse_config_targets(json.dumps([{"url": "http://x/", "pattern": EVERYTHING}]))
    assert target == {"url": "http://x/", "pattern": EVERYTHING, "secret": None, "format": "json"}


def test_backoff_doubles_to_five_minutes_with_jitter(store: Store, vault: Vault) -> None:
    notifier = Notifier(store, vault, outbound=LOOPBACK)
    for attempt, full in [(1, 1), (2, 2), (3, 4), (9, 256), (10, 300), (30, 300)]:
        for _ in range(20):
            assert 0.75 * full <= notifier.backoff(attempt) <= full


def test_no_secret_in_any_stored_row(
    tmp_path: Path, store: Store, vault: Vault, receiver: Receiver
) -> None:
    config_secret = "config-secret-0123456789abcdef"
    notifier, bus = make(
        store,
        vault,
        config_targets=[{"url": receiver.url, "pattern": EVERYTHING, "secret": config_secret}],
    )
    notifier.sync_config_targets()
    generated = notifier.add_target(receiver.url, EVERYTHING)["secret"]
    given = notifier.add_target(receiver.url, EVERYTHING, secret=SECRET, format="slack")["secret"]
    receiver.respond = lambda n: (500 if n == 0 else 200, {})
    bus.service_status_changed(A, "RUNNING", "PAUSED")
    notifier.run_once()
    store.db.execute("PRAGMA wal_checkpoint(FULL)")
    text = all_rows_text(store, tmp_path / "slipway.db")
    assert "notify_targets" in store.db.table_names()
    for secret in (config_secret, generated, given):
        assert secret not in text
    # The rows exist and are sealed, not empty.
    assert all(row["secret"] for row in store.db["notify_targets"].rows)
    conn = sqlite3.connect(tmp_path / "slipway.db")
    assert conn.execute("SELECT COUNT(*) FROM deliveries_out").fetchone()[0] == 3
    conn.close()


# -- the API -----------------------------------------------------------------------------


def api(notifier: Notifier, trail: AuditTrail | None = None) -> tuple[TestClient, list[bytes]]:
    bodies: list[bytes] = []

    async def authenticate(request: Request, body: bytes) -> Caller:
        bodies.append(body)
        if request.headers.get("authorization") != "ok":
            raise UnrecognizedClient("The security token included in the request is invalid.")
        return Caller("AKIDTEST")

    app = FastAPI()

    @app.exception_handler(SlipwayError)
    async def render(_: Request, exc: SlipwayError) -> JSONResponse:
        return JSONResponse({"__type": exc.code, "Message": exc.message}, status_code=exc.status)

    app.include_router(notify_router(notifier, authenticate, trail))
    return TestClient(app, headers={"authorization": "ok"}), bodies


def test_notify_api(store: Store, vault: Vault) -> None:
    notifier = Notifier(store, vault, outbound=LOOPBACK)
    trail = AuditTrail(store)
    client, bodies = api(notifier, trail)
    add = {"Url": "https://example.test/hook", "Pattern": EVERYTHING, "Secret": SECRET}
    reply = client.post("/slipway/v1/notify", json=add)
    assert reply.status_code == 200
    target = reply.json()["Target"]
    assert target["Secret"] == SECRET and target["Format"] == "json"
    assert json.loads(bodies[-1]) == add  # authenticate saw the very body
    listed = client.get("/slipway/v1/notify").json()["Targets"]
    assert [t["Id"] for t in listed] == [target["Id"]] and "Secret" not in listed[0]
    text_pattern = client.post(
        "/slipway/v1/notify",
        json={"Url": "http://x/", "Pattern": json.dumps(EVERYTHING), "Format": "slack"},
    ).json()["Target"]
    assert text_pattern["Pattern"] == EVERYTHING and len(text_pattern["Secret"]) >= 32
    assert client.delete(f"/slipway/v1/notify/{target['Id']}").json() == {"Id": target["Id"]}
    missing = client.delete(f"/slipway/v1/notify/{target['Id']}")
    assert missing.status_code == 400
    assert missing.json()["__type"] == "ResourceNotFoundException"
    bad = client.post("/slipway/v1/notify", json={"Url": "http://x/", "Pattern": {"a": "b"}})
    assert bad.status_code == 400
    assert bad.json()["Message"] == "pattern.a: expected a list of values or matchers"
    assert client.post("/slipway/v1/notify", json={"Url": "http://x/"}).status_code == 400
    anonymous = client.get("/slipway/v1/notify", headers={"authorization": "no"})
    assert anonymous.status_code == 403
    not_json = client.post("/slipway/v1/notify", content=b"{nope")
    assert not_json.json()["Message"].startswith("request body is not valid JSON")
    # Changes are audited, with the secret hidden; reads are not.
    audited = [(r["operation"], r["outcome"], r["access_key_id"]) for r in trail.list()]
    assert audited == [
        ("slipway:AddNotifyTarget", "OK", "AKIDTEST"),
        ("slipway:AddNotifyTarget", "OK", "AKIDTEST"),
        ("slipway:RemoveNotifyTarget", "OK", "AKIDTEST"),
        ("slipway:RemoveNotifyTarget", "ResourceNotFoundException", "AKIDTEST"),
        ("slipway:AddNotifyTarget", "InvalidRequestException", "AKIDTEST"),
        ("slipway:AddNotifyTarget", "InvalidRequestException", "AKIDTEST"),
        ("slipway:AddNotifyTarget", "InvalidRequestException", "AKIDTEST"),
    ]
    first = trail.list()[0]
    assert first["params"]["Secret"] == "HIDDEN_DUE_TO_SECURITY_REASONS"
    assert first["source_ip"] == "testclient"
    assert SECRET not in json.dumps(trail.list())
