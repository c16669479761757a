"""An in-memory webhook sink for unit tests (``webhooks.WebhookSink``): it records
every call and answers from what it was told services track. Like the agent's
tracker, it cannot forget a delivery id; ``ForgettingSink`` can."""

from __future__ import annotations

from typing import Any


def repository_key(url: str) -> str:
    """Host and path of a repository URL, any scheme, without case."""
    rest = url.split("://", 1)[-1].split("@", 1)[-1].replace(":", "/", 1)
    return rest.lower()


class FakeSink:
    def __init__(self, *, global_secret: str | None = None, token: str | None = None) -> None:
        self.global_secret = global_secret
        self.connection_secrets: dict[str, str] = {}  # repository key -> secret
        self.tracked: dict[tuple[str, str], list[str]] = {}  # (repository key, ref) -> names
        # (registry host, repository, tag) -> service names
        self.images_tracked: dict[tuple[str, str, str | None], list[str]] = {}
        self.token = token
        self.seen: set[str] = set()
        self.forgotten: list[str] = []
        self.pushes: list[tuple[set[str], str, str, bool, bool]] = []
        self.images: list[tuple[str, str, str | None, str]] = []
        self.audits: list[tuple[str, str, dict[str, Any]]] = []
        self.fail: Exception | None = None  # raised by the next pushes while set

    def secrets_for_repository(self, urls: set[str]) -> list[str]:
        keys = sorted({repository_key(u) for u in urls})
        own = [self.connection_secrets[k] for k in keys if k in self.connection_secrets]
        # As the agent's rule: the global secret only for a repository without its own.
        return own or ([self.global_secret] if self.global_secret else [])

    def delivery_seen(self, delivery_id: str) -> bool:
        seen = delivery_id in self.seen
        self.seen.add(delivery_id)
        return seen

    def git_pushed(
        self, urls: set[str], ref: str, sha: str, forced: bool, deleted: bool
    ) -> list[str]:
        self.pushes.append((urls, ref, sha, forced, deleted))
        if self.fail:
            raise self.fail
        keys = sorted({repository_key(u) for u in urls})
        return [name for k in keys for name in self.tracked.get((k, ref), [])]

    def image_pushed(
        self, registry_host: str, repository: str, tag: str | None, digest: str
    ) -> list[str]:
        self.images.append((registry_host, repository, tag, digest))
        if self.fail:
            raise self.fail
        return self.images_tracked.get((registry_host, repository, tag), [])

    def registry_token(self) -> str | None:
        return self.token

    def audit(self, source: str, outcome: str, detail: dict[str, Any]) -> None:
        self.audits.append((source, outcome, detail))


class ForgettingSink(FakeSink):
    def forget_delivery(self, delivery_id: str) -> None:
        self.forgotten.append(delivery_id)
        self.seen.discard(delivery_id)
