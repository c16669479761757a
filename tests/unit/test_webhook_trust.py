"""Webhook trust: a delivery is a hint to look at the source, never what is deployed; a
repository with a connection takes only its connection's secret."""

from __future__ import annotations

import time
from typing import Any

from slipway.config import Settings
from slipway.connections import Connections
from slipway.models import ServiceSpec, SourceConfig
from slipway.records import Service
from slipway.triggers import Found, Watch
from slipway.triggers.tracker import Tracker

REPO = "https://github.com/octo/app"
HEAD = "b" * 40
CLAIMED = "c" * 40
DIGEST = "sha256:" + "d" * 64


def service(name: str, source: dict[str, Any], connection: str | None = None) -> Service:
    if connection:
        source = {**source, "AuthenticationConfiguration": {"ConnectionArn": connection}}
    spec = ServiceSpec(source=SourceConfig.from_api(source))
    now = time.time()
    return Service(name, name, f"arn:{name}", name, "RUNNING", spec, now, now)


def code(url: str = REPO) -> dict[str, Any]:
    return {
        "CodeRepository": {
            "RepositoryUrl": url,
            "SourceCodeVersion": {"Type": "BRANCH", "Value": "main"},
        }
    }


IMAGE = {
    "ImageRepository": {
        "ImageIdentifier": "127.0.0.1:5000/team/app:latest",
        "ImageRepositoryType": "ECR_PUBLIC",
    }
}


class Store:
    def __init__(self, *services: Service, connections: dict[str, dict] | None = None) -> None:
        self.services = list(services)
        self.connections = connections or {}

    def list_services(self) -> list[Service]:
        return self.services

    def get_tags(self, arn: str) -> dict[str, str]:
        return {}

    def get_connection(self, arn: str) -> dict | None:
        return self.connections.get(arn)


class Rules:
    def __init__(self) -> None:
        self.detected: list[tuple[str, str]] = []

    def revision_detected(self, service_id: str, revision: str, *, ref: str, trigger: str):
        self.detected.append((service_id, revision))


def tracker(store: Store, revision: str) -> tuple[Tracker, Rules, list[str], list[Watch]]:
    rules, notes, looked = Rules(), [], []

    def check(watch: Watch) -> Found:
        looked.append(watch)
        return Found(revision=revision, ref=watch.ref)

    t = Tracker(
        store,  # type: ignore[arg-type]
        Settings(),
        rules,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        check,
        lambda service_id, text: notes.append(text),
        lambda identifier, kind: None,
    )
    return t, rules, notes, looked


def test_a_push_naming_the_head_deploys_the_head_the_source_gave() -> None:
    t, rules, notes, looked = tracker(Store(service("web", code())), HEAD)
    assert t.git_pushed({REPO}, "refs/heads/main", HEAD, False, False) == ["web"]
    assert len(looked) == 1 and looked[0].ref == "main"
    assert rules.detected == [("web", HEAD)]
    assert notes == []


def test_a_push_naming_another_commit_deploys_only_what_the_branch_is_at() -> None:
    t, rules, notes, _ = tracker(Store(service("web", code())), HEAD)
    assert t.git_pushed({REPO}, "refs/heads/main", CLAIMED, False, False) == []
    # what a poll would have found; a live head makes that a no-op in the rules
    assert rules.detected == [("web", HEAD)]
    assert CLAIMED in notes[0] and f"resolves it to {HEAD}" in notes[0]


def test_a_push_naming_an_untracked_repository_or_branch_looks_at_nothing() -> None:
    t, rules, _, looked = tracker(Store(service("web", code())), HEAD)
    assert (
        t.git_pushed({"https://github.com/other/repo"}, "refs/heads/main", HEAD, False, False) == []
    )
    assert t.git_pushed({REPO}, "refs/heads/dev", HEAD, False, False) == []
    assert looked == [] and rules.detected == []


def test_a_registry_notification_deploys_what_the_tag_resolves_to() -> None:
    t, rules, notes, looked = tracker(Store(service("app", IMAGE)), DIGEST)
    assert t.image_pushed("127.0.0.1:5000", "team/app", "latest", DIGEST) == ["app"]
    assert rules.detected == [("app", DIGEST)] and len(looked) == 1
    forged = "sha256:" + "e" * 64
    assert t.image_pushed("127.0.0.1:5000", "team/app", "latest", forged) == []
    assert rules.detected[-1] == ("app", DIGEST) and forged in notes[0]


class Vault:
    def open(self, sealed: str) -> str:
        return sealed.removeprefix("sealed:")


def connections(store: Store, global_secret: str = "global") -> Connections:
    settings = Settings(github_webhook_secret=global_secret)
    return Connections(store, settings, Vault(), None)  # type: ignore[arg-type]


def test_the_global_secret_serves_only_repositories_without_a_connection() -> None:
    store = Store(
        service("web", code(), connection="arn:conn"),
        service("other", code("https://github.com/octo/other")),
        connections={"arn:conn": {"webhook_secret": "sealed:conn-secret"}},
    )
    conns = connections(store)
    assert conns.webhook_secrets({REPO}) == ["conn-secret"]
    assert conns.webhook_secrets({"https://github.com/octo/other"}) == ["global"]
    assert conns.webhook_secrets(set()) == ["global"]


def test_one_service_with_a_connection_closes_the_repository_to_the_global_secret() -> None:
    store = Store(
        service("plain", code()),
        service("web", code(), connection="arn:conn"),
        connections={"arn:conn": {"webhook_secret": "sealed:conn-secret"}},
    )
    assert connections(store).webhook_secrets({REPO}) == ["conn-secret"]
