"""``pull_request`` deliveries on /hooks/github against fake sinks: what previews are
told, what is refused before them, one audit line each, redelivery after a 503."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient

from slipway.api.hooks import webhook_router
from slipway.models import ServiceSpec
from slipway.preview_rules import PreviewPolicy, Pull, preview_params
from slipway.sources.github_errors import GitHubUnavailable
from slipway.triggers.fake import ForgettingSink
from slipway.triggers.pulls import PullOutcome

SECRET = "global-secret"
REPO = {"full_name": "acme/app", "clone_url": "https://github.com/acme/app.git"}


class FakePulls:
    def __init__(self) -> None:
        self.calls: list[tuple[set[str], int, str]] = []
        self.fail: Exception | None = None

    def pull_changed(self, urls: set[str], number: int, action: str) -> PullOutcome:
        self.calls.append((urls, number, action))
        if self.fail:
            raise self.fail
        return PullOutcome("accepted", f"creating app-pr-{number}", [f"app-pr-{number}"])


def deliver(
    client: TestClient, sink: ForgettingSink, payload: Any, delivery: str = "d-1"
) -> httpx.Response:
    body = json.dumps(payload).encode()
    before = len(sink.audits)
    response = client.post(
        "/hooks/github",
        content=body,
        headers={
            "X-GitHub-Event": "pull_request",
            "X-GitHub-Delivery": delivery,
            "Content-Type": "application/json",
            "X-Hub-Signature-256": "sha256="
            + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest(),
        },
    )
    assert len(sink.audits) == before + 1
    assert sink.audits[-1][1] == response.json()["status"]
    return response


def setup() -> tuple[TestClient, ForgettingSink, FakePulls]:
    sink, pulls = ForgettingSink(global_secret=SECRET), FakePulls()
    app = FastAPI()
    app.include_router(webhook_router(sink, pulls=pulls))
    return TestClient(app), sink, pulls


def test_pull_request_actions_reach_previews():
    client, sink, pulls = setup()
    reply = deliver(client, sink, {"action": "opened", "number": 7, "repository": REPO})
    assert reply.status_code == 202
    assert reply.json() == {
        "status": "accepted",
        "reason": "creating app-pr-7",
        "services": ["app-pr-7"],
    }
    assert pulls.calls == [({"https://github.com/acme/app"}, 7, "opened")]
    assert sink.audits[-1][2]["number"] == 7 and sink.audits[-1][2]["action"] == "opened"


def test_other_actions_and_bad_payloads_do_not_reach_previews():
    client, sink, pulls = setup()
    labeled = deliver(client, sink, {"action": "labeled", "number": 7, "repository": REPO})
    assert labeled.json() == {"status": "ignored", "reason": "pull_request labeled is not acted on"}
    bad = deliver(client, sink, {"action": "opened", "repository": REPO}, delivery="d-2")
    assert bad.status_code == 400 and "number" in bad.json()["reason"]
    assert pulls.calls == []


def test_a_passing_failure_is_503_and_the_redelivery_is_acted_on():
    client, sink, pulls = setup()
    pulls.fail = GitHubUnavailable("GitHub answered 502")
    payload = {"action": "synchronize", "number": 7, "repository": REPO}
    assert deliver(client, sink, payload).status_code == 503
    assert sink.forgotten == ["d-1"]
    pulls.fail = None
    assert deliver(client, sink, payload).json()["status"] == "accepted"


def test_a_fork_preview_gets_nothing_secret_of_its_parent():
    spec = ServiceSpec.from_create(
        {
            "SourceConfiguration": {
                "CodeRepository": {
                    "RepositoryUrl": "https://github.com/acme/app",
                    "SourceCodeVersion": {"Type": "BRANCH", "Value": "main"},
                    "CodeConfiguration": {
                        "ConfigurationSource": "API",
                        "CodeConfigurationValues": {
                            "Runtime": "PYTHON_3",
                            "RuntimeEnvironmentVariables": {"MODE": "prod", "KEEP": "1"},
                            "RuntimeEnvironmentSecrets": {"DB": "db-password"},
                        },
                    },
                },
                "AuthenticationConfiguration": {"ConnectionArn": "arn:conn"},
            }
        }
    )
    tags = {"slipway:preview-env:MODE": "preview", "other": "x"}
    own = Pull(7, True, False, "a" * 40, "feature", "acme/app", "u", "acme/app")
    fork = Pull(8, True, False, "b" * 40, "patch", "mallory/app", "https://m/app.git", "acme/app")

    same = preview_params(spec, "arn:parent", tags, own, "app-pr-7")
    source = same["SourceConfiguration"]
    values = source["CodeRepository"]["CodeConfiguration"]["CodeConfigurationValues"]
    assert source["AuthenticationConfiguration"] == {"ConnectionArn": "arn:conn"}
    assert source["CodeRepository"]["SourceCodeVersion"]["Value"] == "feature"
    assert values["RuntimeEnvironmentSecrets"] == {"DB": "db-password"}
    assert values["RuntimeEnvironmentVariables"] == {"MODE": "preview", "KEEP": "1"}
    assert {"Key": "slipway:preview-pr", "Value": "7"} in same["Tags"]

    forked = preview_params(spec, "arn:parent", tags, fork, "app-pr-8")["SourceConfiguration"]
    assert "AuthenticationConfiguration" not in forked
    assert forked["CodeRepository"]["RepositoryUrl"] == "https://m/app.git"
    values = forked["CodeRepository"]["CodeConfiguration"]["CodeConfigurationValues"]
    assert "RuntimeEnvironmentSecrets" not in values
    # The parent's own spec is untouched.
    assert spec.source.code.values["RuntimeEnvironmentSecrets"] == {"DB": "db-password"}
    assert PreviewPolicy(1.0, 1).to_tag() == "ttl=1s,max=1,forks=no,poll=yes"
