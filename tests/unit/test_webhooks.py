"""Webhook endpoints against a fake sink: signatures, replays, body limits, payload
shapes, registry envelopes, and exactly one audit line per request."""

from __future__ import annotations

import ast
import contextlib
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import anyio
import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

import slipway.triggers
from slipway.api.hooks import webhook_router
from slipway.edgelimits import EdgeLimits
from slipway.errors import InvalidRequest, RegistryUnreachable
from slipway.store import StoreError
from slipway.triggers.fake import FakeSink, ForgettingSink
from slipway.triggers.webhooks import signature_matches, tidy_repository_url

GLOBAL_SECRET = "global-secret"
TOKEN = "registry-token"
SHA = "a" * 40
DIGEST = "sha256:" + "b" * 64
MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
REPO = {
    "full_name": "Octo/Repo",
    "clone_url": "https://github.com/Octo/Repo.git",
    "html_url": "https://github.com/Octo/Repo",
    "ssh_url": "git@github.com:Octo/Repo.git",
    "git_url": "git://github.com/Octo/Repo.git",
}
URLS = {"https://github.com/Octo/Repo", "git@github.com:Octo/Repo", "git://github.com/Octo/Repo"}
KEY = "github.com/octo/repo"


def tracking_sink(sink: FakeSink) -> FakeSink:
    """The sink these tests start from: web tracks main of Octo/Repo, app the registry's
    team/app:latest."""
    sink.tracked = {(KEY, "refs/heads/main"): ["web"]}
    sink.images_tracked = {("127.0.0.1:5000", "team/app", "latest"): ["app"]}
    return sink


@pytest.fixture
def sink() -> FakeSink:
    return tracking_sink(FakeSink(global_secret=GLOBAL_SECRET, token=TOKEN))


def make_app(sink: FakeSink, **options: Any) -> FastAPI:
    app = FastAPI()
    app.include_router(webhook_router(sink, **options))
    return app


@pytest.fixture
def client(sink: FakeSink) -> TestClient:
    return TestClient(make_app(sink))


def sign(body: bytes, secret: str = GLOBAL_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def push_payload(ref: str = "refs/heads/main", **repository: str) -> dict[str, Any]:
    return {
        "ref": ref,
        "before": "0" * 40,
        "after": SHA,
        "forced": False,
        "deleted": False,
        "created": False,
        "repository": repository or REPO,
    }


def github(
    client: TestClient,
    sink: FakeSink,
    payload: Any,
    *,
    event: str = "push",
    delivery: str = "d-1",
    secret: str | None = GLOBAL_SECRET,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST one delivery and check it left exactly one audit line."""
    body = json.dumps(payload).encode() if body is None else body
    sent = {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery}
    sent["Content-Type"] = "application/json"
    if secret is not None:
        sent["X-Hub-Signature-256"] = sign(body, secret)
    sent.update(headers or {})
    before = len(sink.audits)
    response = client.post("/hooks/github", content=body, headers=sent)
    assert len(sink.audits) == before + 1, sink.audits
    assert sink.audits[-1][1] == response.json()["status"]
    return response


# --- GitHub ---------------------------------------------------------------------------


def test_ping_answers_pong(client: TestClient, sink: FakeSink) -> None:
    response = github(
        client, sink, {"zen": "Keep it logically awesome.", "hook_id": 1}, event="ping"
    )
    assert response.status_code == 200
    assert response.json() == {"status": "pong", "zen": "Keep it logically awesome."}
    assert sink.seen == {"d-1"}
    source, outcome, detail = sink.audits[0]
    assert source == "testclient"
    assert (outcome, detail["hook"], detail["event"], detail["delivery"]) == (
        "pong",
        "github",
        "ping",
        "d-1",
    )


def test_push_to_tracked_branch_starts_services(client: TestClient, sink: FakeSink) -> None:
    response = github(client, sink, push_payload())
    assert response.status_code == 202
    assert response.json() == {"status": "accepted", "services": ["web"]}
    assert sink.pushes == [(URLS, "refs/heads/main", SHA, False, False)]
    assert sink.audits[0][2]["services"] == ["web"]


def test_push_to_untracked_branch_is_ignored(client: TestClient, sink: FakeSink) -> None:
    response = github(client, sink, push_payload("refs/heads/dev"))
    assert response.status_code == 202
    assert response.json() == {
        "status": "ignored",
        "reason": "no service took https://github.com/Octo/Repo refs/heads/dev at"
        f" {SHA}: none tracks it, or the source does not resolve it to that commit",
    }
    assert len(sink.pushes) == 1


def test_forced_and_deleted_flags_pass_through(client: TestClient, sink: FakeSink) -> None:
    payload = {**push_payload(), "forced": True, "deleted": True, "after": "0" * 40}
    github(client, sink, payload)
    assert sink.pushes == [(URLS, "refs/heads/main", "0" * 40, True, True)]


@pytest.mark.parametrize("event", ["issues", "pull_request", "create"])
def test_other_events_are_ignored(client: TestClient, sink: FakeSink, event: str) -> None:
    response = github(client, sink, {"action": "opened", "repository": REPO}, event=event)
    assert response.status_code == 202
    assert response.json() == {"status": "ignored", "reason": f"{event} events are not acted on"}
    assert sink.pushes == []


def test_forged_signature_is_refused_and_records_nothing(
    client: TestClient, sink: FakeSink
) -> None:
    response = github(client, sink, push_payload(), secret="guessed", delivery="real-id")
    assert response.status_code == 401
    assert "does not match" in response.json()["reason"]
    assert sink.seen == set() and sink.pushes == []
    source, outcome, detail = sink.audits[0]
    assert (outcome, detail["delivery"], detail["event"]) == ("unauthorized", "real-id", "push")
    # The forged copy did not burn the id: the real delivery still goes through.
    assert github(client, sink, push_payload(), delivery="real-id").status_code == 202


def test_missing_signature_is_refused(client: TestClient, sink: FakeSink) -> None:
    response = github(client, sink, push_payload(), secret=None)
    assert response.status_code == 401
    assert response.json()["reason"] == "X-Hub-Signature-256 header missing"
    assert sink.seen == set() and sink.pushes == []


@pytest.mark.parametrize("header", ["sha1=abc", "sha256=", "garbage", sign(b"other body")])
def test_malformed_signature_headers_are_refused(
    client: TestClient, sink: FakeSink, header: str
) -> None:
    response = github(client, sink, push_payload(), headers={"X-Hub-Signature-256": header})
    assert response.status_code == 401


def test_no_secret_configured_refuses(client: TestClient, sink: FakeSink) -> None:
    sink.global_secret = None
    response = github(client, sink, push_payload())
    assert response.status_code == 401
    assert response.json()["reason"] == "no webhook secret configured for this repository"
    assert sink.seen == set()


def test_empty_secret_never_verifies(client: TestClient, sink: FakeSink) -> None:
    sink.global_secret = ""
    assert github(client, sink, push_payload(), secret="").status_code == 401


def test_duplicate_delivery_is_not_acted_on_twice(client: TestClient, sink: FakeSink) -> None:
    assert github(client, sink, push_payload()).status_code == 202
    replay = github(client, sink, push_payload())
    assert replay.status_code == 200
    assert replay.json()["status"] == "duplicate"
    assert len(sink.pushes) == 1


def test_per_connection_and_global_secrets(client: TestClient, sink: FakeSink) -> None:
    sink.connection_secrets = {KEY: "octo-secret", "github.com/other/repo": "other-secret"}

    def status(secret: str, delivery: str) -> int:
        return github(client, sink, push_payload(), secret=secret, delivery=delivery).status_code

    assert status("octo-secret", "d-1") == 202
    # A repository with its own secret is closed to the global one.
    assert status(GLOBAL_SECRET, "d-2") == 401
    # Another connection's secret does not sign for this repository.
    assert status("other-secret", "d-3") == 401
    sink.connection_secrets = {}
    assert status(GLOBAL_SECRET, "d-4") == 202


def test_json_nested_too_deep_is_refused_before_the_signature_is_checked(
    client: TestClient, sink: FakeSink
) -> None:
    deep = b'{"a":' * 40 + b"1" + b"}" * 40
    asked: list[set[str]] = []
    secrets = sink.secrets_for_repository
    sink.secrets_for_repository = lambda urls: asked.append(urls) or secrets(urls)  # type: ignore[method-assign]
    response = github(client, sink, None, body=deep)
    assert (response.status_code, response.json()["status"]) == (400, "bad_request")
    assert "max_json_depth" in response.json()["reason"]
    form = b"payload=" + b"%7B%22a%22%3A" * 40 + b"1" + b"%7D" * 40
    refused = github(
        client,
        sink,
        None,
        body=form,
        delivery="d-2",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert refused.status_code == 400
    assert asked == [] and sink.pushes == []


def test_deliveries_and_failed_signatures_are_throttled_per_address(sink: FakeSink) -> None:
    limits = EdgeLimits(hook_burst=3, auth_failure_burst=2)
    client = TestClient(make_app(sink, limits=limits))
    assert github(client, sink, push_payload(), secret="wrong", delivery="d-1").status_code == 401
    assert github(client, sink, push_payload(), secret="wrong", delivery="d-2").status_code == 401
    # two failures spent the failure bucket: even a good signature is refused now
    throttled = github(client, sink, push_payload(), delivery="d-3")
    assert (throttled.status_code, throttled.json()["status"]) == (429, "throttled")
    assert sink.pushes == []
    fresh = TestClient(make_app(sink, limits=limits))
    for n in range(3):
        assert github(fresh, sink, push_payload(), delivery=f"e-{n}").status_code in (200, 202)
    assert github(fresh, sink, push_payload(), delivery="e-3").status_code == 429


@pytest.mark.parametrize("field", ["clone_url", "html_url", "ssh_url", "git_url"])
@pytest.mark.parametrize(
    "tracked",
    [
        "https://github.com/octo/repo",
        "https://github.com/Octo/Repo.git",
        "git@github.com:octo/repo.git",
        "ssh://git@github.com/octo/repo/",
    ],
)
def test_any_url_form_matches_any_service_url_form(
    client: TestClient, sink: FakeSink, field: str, tracked: str
) -> None:
    """Against the agent's own matching (``connections.normalize_url``)."""
    normalize = pytest.importorskip("slipway.connections").normalize_url
    sink.tracked = {(normalize(tracked), "refs/heads/main"): ["web"]}
    pushed: list[set[str]] = []

    def git_pushed(urls: set[str], ref: str, *_: Any) -> list[str]:
        pushed.append(urls)
        wanted = {normalize(u) for u in urls}
        return [n for (k, r), names in sink.tracked.items() if k in wanted for n in names]

    sink.git_pushed = git_pushed  # type: ignore[method-assign]
    response = github(client, sink, push_payload(**{field: REPO[field]}))
    assert response.json() == {"status": "accepted", "services": ["web"]}
    assert pushed == [{tidy_repository_url(REPO[field])}]


@pytest.mark.parametrize(
    ("url", "tidy"),
    [
        ("https://github.com/Octo/Repo.git", "https://github.com/Octo/Repo"),
        (" https://GitHub.com/Octo/Repo/ ", "https://github.com/Octo/Repo"),
        ("https://token@GitHub.COM:8443/o/r.git/", "https://token@github.com:8443/o/r"),
        ("git@GitHub.com:Octo/Repo.git", "git@github.com:Octo/Repo"),
        ("ssh://git@GITHUB.com:22/o/r.git", "ssh://git@github.com:22/o/r"),
        ("git://github.com/o/r.git.git", "git://github.com/o/r"),
    ],
)
def test_tidy_repository_url(url: str, tidy: str) -> None:
    assert tidy_repository_url(url) == tidy
    assert tidy_repository_url(tidy) == tidy


def test_malformed_json_after_signature_is_400(client: TestClient, sink: FakeSink) -> None:
    response = github(client, sink, None, body=b"{not json")
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["reason"]
    assert sink.seen == set()


def test_malformed_json_with_bad_signature_is_401(client: TestClient, sink: FakeSink) -> None:
    response = github(client, sink, None, body=b"{not json", secret="wrong")
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"ref": None}, "ref"),
        ({"after": ""}, "after"),
        ({"repository": {"full_name": "octo/repo"}}, "repository.clone_url"),
        ({"after": "not-a-sha"}, "no SHA"),
        ({"forced": "yes"}, "forced"),
    ],
)
def test_push_missing_fields_is_400(
    client: TestClient, sink: FakeSink, change: dict[str, Any], named: str
) -> None:
    payload = {k: v for k, v in {**push_payload(), **change}.items() if v is not None}
    response = github(client, sink, payload)
    assert response.status_code == 400
    assert named in response.json()["reason"]
    assert sink.pushes == [] and sink.seen == set()


@pytest.mark.parametrize("missing", ["X-GitHub-Event", "X-GitHub-Delivery"])
def test_missing_event_headers_are_400(client: TestClient, sink: FakeSink, missing: str) -> None:
    body = json.dumps(push_payload()).encode()
    headers = {
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": "d-1",
        "X-Hub-Signature-256": sign(body),
    }
    del headers[missing]
    response = client.post("/hooks/github", content=body, headers=headers)
    assert response.status_code == 400
    assert missing in response.json()["reason"]
    assert len(sink.audits) == 1


def test_form_encoded_payload(client: TestClient, sink: FakeSink) -> None:
    body = urlencode({"payload": json.dumps(push_payload())}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    response = github(client, sink, None, body=body, headers=headers)
    assert response.json() == {"status": "accepted", "services": ["web"]}


def test_passing_sink_failure_is_503_and_can_be_redelivered() -> None:
    sink = tracking_sink(ForgettingSink(global_secret=GLOBAL_SECRET, token=TOKEN))
    client = TestClient(make_app(sink))
    sink.fail = StoreError("database is locked")
    response = github(client, sink, push_payload())
    assert response.status_code == 503
    assert response.json()["status"] == "retry"
    assert sink.forgotten == ["d-1"]
    sink.fail = None
    assert github(client, sink, push_payload()).status_code == 202


def test_passing_failure_without_forgetting_makes_redelivery_a_duplicate(
    client: TestClient, sink: FakeSink
) -> None:
    sink.fail = StoreError("database is locked")
    assert github(client, sink, push_payload()).status_code == 503
    sink.fail = None
    assert github(client, sink, push_payload()).json()["status"] == "duplicate"


def test_terminal_sink_failure_keeps_its_status(client: TestClient, sink: FakeSink) -> None:
    sink.fail = InvalidRequest("branch name is not valid")
    response = github(client, sink, push_payload())
    assert response.status_code == 400
    assert response.json() == {"status": "failed", "reason": "branch name is not valid"}
    assert sink.forgotten == []


def test_unexpected_sink_failure_is_500_and_audited(client: TestClient, sink: FakeSink) -> None:
    sink.fail = KeyError("boom")
    response = github(client, sink, push_payload())
    assert response.status_code == 500
    assert sink.audits[-1][1] == "error"


def test_signature_matches_compares_every_secret() -> None:
    body = b"{}"
    assert signature_matches(body, sign(body, "b"), ["a", "b"])
    assert signature_matches(body, sign(body, "b").upper().replace("SHA256", "sha256"), ["b"])
    assert not signature_matches(body, sign(body, "c"), ["a", "b"])
    assert not signature_matches(body, "sha256=\u00e9", ["a"])


# --- body limits ----------------------------------------------------------------------


def test_content_length_too_big_is_refused_up_front(client: TestClient, sink: FakeSink) -> None:
    headers = {"Content-Length": str(26 * 1024 * 1024), "X-GitHub-Event": "push"}
    response = client.post("/hooks/github", content=b"{}", headers=headers)
    assert response.status_code == 413
    assert [a[1] for a in sink.audits] == ["too_large"]


def test_body_over_the_cap_is_413(sink: FakeSink) -> None:
    client = TestClient(make_app(sink, max_body=1024))
    response = github(client, sink, None, body=b"x" * 1025)
    assert response.status_code == 413
    assert sink.seen == set()


@pytest.mark.parametrize("length", ["-1", "1e3", "\u00b2"])
def test_bad_content_length_is_400(client: TestClient, sink: FakeSink, length: str) -> None:
    response = client.post(
        "/hooks/github", content=b"{}", headers={"Content-Length": length.encode("latin-1")}
    )
    assert response.status_code == 400
    assert [a[1] for a in sink.audits] == ["bad_request"]


def test_truncated_body_is_400(client: TestClient, sink: FakeSink) -> None:
    body = json.dumps(push_payload()).encode()
    headers = {"Content-Length": str(len(body) + 100)}
    response = github(client, sink, None, body=body, headers=headers)
    assert response.status_code == 400
    assert response.json()["status"] == "truncated"
    assert sink.pushes == [] and sink.seen == set()


def _asgi_post(app: FastAPI, chunks: Iterator[dict[str, Any]]) -> tuple[int, int]:
    """Drive the app over raw ASGI; returns (status, messages the app pulled)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/hooks/github",
        "raw_path": b"/hooks/github",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"x-github-event", b"push"), (b"transfer-encoding", b"chunked")],
        "client": ("192.0.2.7", 40000),
        "server": ("127.0.0.1", 8780),
    }
    pulled = 0
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        pulled += 1
        return next(chunks)

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    anyio.run(app, scope, receive, send)
    return statuses[0], pulled


def test_streamed_body_is_cut_off_at_the_cap(sink: FakeSink) -> None:
    """A chunked body 1 MiB past the cap (max_hook_bytes): reading stops just past it."""
    chunk = 64 * 1024
    cap = EdgeLimits().max_hook_bytes
    total = (cap + 1024 * 1024) // chunk
    stream = (
        {"type": "http.request", "body": b"x" * chunk, "more_body": i < total - 1}
        for i in range(total)
    )
    status, pulled = _asgi_post(make_app(sink), stream)
    assert status == 413
    assert pulled == cap // chunk + 1 < total
    assert sink.audits[0][0] == "192.0.2.7"
    assert [a[1] for a in sink.audits] == ["too_large"]


def test_client_going_away_is_400(sink: FakeSink) -> None:
    stream = iter(
        [{"type": "http.request", "body": b"{", "more_body": True}, {"type": "http.disconnect"}]
    )
    status, _ = _asgi_post(make_app(sink), stream)
    assert status == 400
    assert [a[1] for a in sink.audits] == ["truncated"]


@contextlib.contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """The app on a real uvicorn socket in a thread, for what TestClient buffers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def test_endless_upload_over_a_socket_is_cut_off(sink: FakeSink) -> None:
    """The 413 closes the connection: the server does not drain a body that never ends."""
    sent = 0

    def body() -> Iterator[bytes]:
        nonlocal sent
        while sent < 10 * 1024**3:
            sent += 64 * 1024
            yield b"x" * (64 * 1024)

    with serve(make_app(sink)) as url:
        started = time.monotonic()
        response = httpx.post(f"{url}/hooks/github", content=body(), timeout=10)
        elapsed = time.monotonic() - started
    assert response.status_code == 413
    assert response.headers["connection"] == "close"
    assert elapsed < 5
    assert sent < 64 * 1024**2  # 25 MiB read, the rest only what the socket buffers held
    assert [a[1] for a in sink.audits] == ["too_large"]


def test_upload_cut_short_over_a_socket_is_audited(sink: FakeSink) -> None:
    with serve(make_app(sink)) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as conn:
            conn.sendall(
                b"POST /hooks/github HTTP/1.1\r\nHost: slipway\r\nContent-Length: 1000\r\n"
                b'X-GitHub-Event: push\r\nX-GitHub-Delivery: d-9\r\n\r\n{"ref":'
            )
            conn.shutdown(socket.SHUT_WR)
            conn.recv(1024)
        deadline = time.monotonic() + 5
        while not sink.audits and time.monotonic() < deadline:
            time.sleep(0.01)
    assert [(a[1], a[2]["delivery"]) for a in sink.audits] == [("truncated", "d-9")]
    assert sink.seen == set()


# --- registry notifications -----------------------------------------------------------


def registry_event(
    action: str = "push",
    media_type: str = MANIFEST,
    tag: str | None = "latest",
    host: str | None = "127.0.0.1:5000",
    digest: str = DIGEST,
) -> dict[str, Any]:
    target = {
        "mediaType": media_type,
        "size": 528,
        "digest": digest,
        "length": 528,
        "repository": "team/app",
        "url": f"http://127.0.0.1:5000/v2/team/app/manifests/{digest}",
    }
    if tag is not None:
        target["tag"] = tag
    event = {"id": "e-1", "action": action, "target": target, "request": {"method": "PUT"}}
    if host is not None:
        event["request"]["host"] = host
    return event


def notify(
    client: TestClient, sink: FakeSink, *events: dict[str, Any], token: str | None = TOKEN
) -> httpx.Response:
    headers = {"Content-Type": "application/vnd.docker.distribution.events.v1+json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    before = len(sink.audits)
    response = client.post(
        "/hooks/registry", content=json.dumps({"events": list(events)}), headers=headers
    )
    assert len(sink.audits) == before + 1
    assert sink.audits[-1][1] == response.json()["status"]
    return response


def test_manifest_push_reports_image(client: TestClient, sink: FakeSink) -> None:
    response = notify(client, sink, registry_event())
    assert response.status_code == 200
    assert sink.images == [("127.0.0.1:5000", "team/app", "latest", DIGEST)]
    body = response.json()
    assert body["status"] == "accepted"
    assert body["accepted"][0]["services"] == ["app"]


def test_host_falls_back_to_target_url(client: TestClient, sink: FakeSink) -> None:
    notify(client, sink, registry_event(host=None, tag=None))
    assert sink.images == [("127.0.0.1:5000", "team/app", None, DIGEST)]


@pytest.mark.parametrize(
    "event",
    [
        registry_event(media_type="application/octet-stream"),
        registry_event(media_type="application/vnd.docker.image.rootfs.diff.tar.gzip"),
        registry_event(action="pull"),
        registry_event(action="delete"),
        registry_event(action="mount"),
    ],
)
def test_blobs_pulls_and_deletes_are_ignored(
    client: TestClient, sink: FakeSink, event: dict[str, Any]
) -> None:
    response = notify(client, sink, event)
    assert response.status_code == 200
    assert response.json()["status"] == "ignored"
    assert sink.images == []


def test_one_envelope_many_events(client: TestClient, sink: FakeSink) -> None:
    events = [
        registry_event(media_type="application/octet-stream"),
        registry_event(media_type="application/octet-stream"),
        registry_event(media_type="application/vnd.oci.image.index.v1+json"),
        registry_event(action="pull"),
    ]
    response = notify(client, sink, *events)
    assert response.json()["ignored"] == 3
    assert len(sink.images) == 1


@pytest.mark.parametrize("token", [None, "wrong", ""])
def test_bad_registry_token_is_401(client: TestClient, sink: FakeSink, token: str | None) -> None:
    response = notify(client, sink, registry_event(), token=token)
    assert response.status_code == 401
    assert sink.images == []


def test_basic_auth_scheme_is_refused(client: TestClient, sink: FakeSink) -> None:
    response = client.post(
        "/hooks/registry", content=b'{"events": []}', headers={"Authorization": f"Basic {TOKEN}"}
    )
    assert response.status_code == 401


def test_no_registry_token_configured_is_401(client: TestClient, sink: FakeSink) -> None:
    sink.token = None
    response = notify(client, sink, registry_event(), token="")
    assert response.status_code == 401
    assert response.json()["reason"] == "no registry notification token configured"


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"events": {}}'])
def test_malformed_envelope_is_400(client: TestClient, sink: FakeSink, body: bytes) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    response = client.post("/hooks/registry", content=body, headers=headers)
    assert response.status_code == 400
    assert [a[1] for a in sink.audits] == ["bad_request"]


def test_event_without_digest_is_reported_not_retried(client: TestClient, sink: FakeSink) -> None:
    event = registry_event()
    del event["target"]["digest"]
    response = notify(client, sink, event)
    assert response.status_code == 200
    assert response.json()["failed"][0]["reason"] == "event lacks host, repository or digest"


def test_passing_failure_asks_the_registry_to_retry(client: TestClient, sink: FakeSink) -> None:
    sink.fail = RegistryUnreachable("registry timed out")
    response = notify(client, sink, registry_event())
    assert response.status_code == 503
    assert response.json()["status"] == "retry"


@pytest.mark.parametrize("error", [InvalidRequest("no such tag"), KeyError("bug")])
def test_failures_that_cannot_heal_still_answer_200(
    client: TestClient, sink: FakeSink, error: Exception
) -> None:
    sink.fail = error
    response = notify(client, sink, registry_event())
    assert response.status_code == 200
    assert response.json()["failed"][0]["repository"] == "team/app"


def test_triggers_import_no_http_framework() -> None:
    """The endpoints live in ``api/hooks.py``; ``triggers/`` stays plain functions."""
    for module in Path(slipway.triggers.__file__).parent.glob("*.py"):
        tree = ast.parse(module.read_text())
        imported = {
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        } | {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        frameworks = {name for name in imported if name.split(".")[0] in {"fastapi", "starlette"}}
        assert not frameworks, f"{module.name} imports {sorted(frameworks)}"
