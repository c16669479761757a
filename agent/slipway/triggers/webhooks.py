"""Webhooks: GitHub pushes and registry notifications, turned into calls on a
``WebhookSink``. Plain functions over headers and a body, so the decisions are tested
without a server; the HTTP endpoints (``/hooks/github``, ``/hooks/registry``: body cap,
one audit line per request) are ``api/hooks.py``.

GitHub signs the raw body with HMAC-SHA256 (``X-Hub-Signature-256``) but puts no
timestamp under the signature, so a captured delivery stays valid forever: the
delivery id (``X-GitHub-Delivery``) is the replay defence. It is recorded only after
the signature verifies (a forged copy must not block the real one), and the sink
keeps seen ids for at least 7 days. GitHub's "Redeliver" reuses the id, so a
delivery that failed for a passing reason is forgotten again when the sink can
(``ForgetsDeliveries``); otherwise its redelivery is a duplicate and the poller is
what picks the revision up.

The registry (docker-registry / distribution) retries a batch on any answer outside
2xx/3xx and holds later notifications back meanwhile, so it gets 5xx only for passing
failures (the store is busy, a registry is unreachable); events that can never work
are answered 200 and reported in the body and the audit line. A retried batch
repeats events already handled: ``image_pushed`` must be idempotent (the deployment
rules ignore a revision that is live or queued already).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable
from urllib.parse import parse_qs, urlsplit, urlunsplit

from ..edgelimits import EdgeLimits, json_depth
from ..errors import RegistryError, SlipwayError
from .pulls import ACTIONS, PullSink, read_pull_event

log = logging.getLogger("slipway.webhooks")

MANIFEST_MEDIA_TYPES = frozenset(
    {
        "application/vnd.docker.distribution.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    }
)
_REVISION = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")


class WebhookSink(Protocol):
    """What the webhooks need from the agent. Methods are called from a worker thread."""

    def secrets_for_repository(self, urls: set[str]) -> list[str]:
        """Candidate HMAC secrets for these repositories: their connections' when a
        service of theirs has one, else the global one. ``urls`` are the payload's
        clone, html, ssh and git URLs, tidied by ``tidy_repository_url`` (match them
        with ``connections.normalize_url``); it is
        empty when the payload names no repository, and then only the global secret
        applies. An empty list means no secret is configured: the delivery is refused."""
        ...

    def delivery_seen(self, delivery_id: str) -> bool:
        """Record a GitHub delivery id (keep it 7 days or more); True if already recorded."""
        ...

    def git_pushed(
        self, urls: set[str], ref: str, sha: str, forced: bool, deleted: bool
    ) -> list[str]:
        """A push to ``ref``, as a hint: the sink looks at the source now and deploys what
        the tracked branch (or tag policy) resolves to, whatever the payload says. Names
        of the services whose source resolved to ``sha`` (empty: none tracks it, or the
        payload named a commit that is not the head)."""
        ...

    def image_pushed(
        self, registry_host: str, repository: str, tag: str | None, digest: str
    ) -> list[str]:
        """A manifest pushed to a registry, as a hint: the sink looks at what the tracked
        tag resolves to now. Names of the services whose tag resolved to ``digest``."""
        ...

    def registry_token(self) -> str | None:
        """The bearer token registry notifications must carry; None: none configured."""
        ...

    def audit(self, source: str, outcome: str, detail: dict[str, Any]) -> None:
        """One line per webhook request: ``source`` is the caller's IP address; ``detail``
        has ``hook`` ("github" or "registry"), ``event``, ``delivery``, ``reason``..."""
        ...


@runtime_checkable
class ForgetsDeliveries(Protocol):
    """Optional for a sink: drop a recorded delivery id, so that GitHub's redelivery of
    a delivery that failed for a passing reason (answered 503) is acted on."""

    def forget_delivery(self, delivery_id: str) -> None: ...


class Reply(Exception):
    """How a webhook request ends: an HTTP status, an audit outcome, a JSON body."""

    def __init__(self, status: int, outcome: str, reason: str = "", **body: Any) -> None:
        super().__init__(reason or outcome)
        self.status, self.outcome, self.reason, self.body = status, outcome, reason, body

    def content(self) -> dict[str, Any]:
        return {
            "status": self.outcome,
            **({"reason": self.reason} if self.reason else {}),
            **self.body,
        }


def tidy_repository_url(url: str) -> str:
    """The URL without surrounding space, trailing ``/`` or ``.git``, host lowercased;
    scheme, user and form (``git@host:o/r``) are kept, so whatever normalizer the sink
    matches services with still sees a URL."""
    text = url.strip().rstrip("/")
    while text.endswith(".git"):
        text = text.removesuffix(".git").rstrip("/")
    if "://" in text:
        parts = urlsplit(text)
        user, at, host = parts.netloc.rpartition("@")
        return urlunsplit(parts._replace(netloc=f"{user}{at}{host.lower()}"))
    user_host, colon, path = text.partition(":")  # scp-like: git@github.com:o/r
    user, at, host = user_host.rpartition("@")
    return f"{user}{at}{host.lower()}{colon}{path}"


def repository_urls(payload: Any) -> set[str]:
    """Every URL GitHub gives for the payload's repository, tidied."""
    repository = payload.get("repository") if isinstance(payload, dict) else None
    if not isinstance(repository, dict):
        return set()
    return {
        tidy_repository_url(value)
        for name in ("clone_url", "html_url", "ssh_url", "git_url")
        if isinstance(value := repository.get(name), str) and value.strip()
    }


def signature_matches(body: bytes, header: str, secrets: list[str]) -> bool:
    """Whether ``sha256=<hex>`` is the HMAC of ``body`` under any secret; every
    candidate is compared in constant time, and empty secrets never match."""
    scheme, _, given = header.strip().partition("=")
    if scheme.lower() != "sha256" or not given:
        return False
    provided = given.strip().lower().encode("latin-1", "replace")
    matched = False
    for secret in secrets:
        if secret:
            expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest().encode()
            matched |= hmac.compare_digest(expected, provided)
    return matched


def token_matches(header: str, token: str | None) -> bool:
    """Whether ``Authorization: Bearer <token>`` carries ``token`` (constant time)."""
    scheme, _, given = header.strip().partition(" ")
    if not token or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode("latin-1", "replace"), token.encode())


@dataclass
class Push:
    """The parts of a GitHub ``push`` payload that matter here."""

    name: str
    ref: str
    after: str
    forced: bool
    deleted: bool


def _decode_github(body: bytes, content_type: str) -> tuple[Any, str | None]:
    """The payload (JSON, or form-encoded ``payload=``), or the reason it is unreadable.
    Unreadable payloads are refused only once the signature has been checked."""
    try:
        if content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
            form = parse_qs(body.decode("utf-8"), strict_parsing=True)
            if "payload" not in form:
                return None, "form-encoded body has no payload field"
            return json.loads(form["payload"][0]), None
        return json.loads(body), None
    except (ValueError, UnicodeDecodeError) as exc:
        return None, f"body is not valid JSON: {exc}"


def _parse_push(payload: Any, urls: set[str]) -> Push:
    """Check a push payload's fields; ``Reply(400)`` names what is missing or wrong."""
    if not isinstance(payload, dict):
        raise Reply(400, "bad_request", "push payload is not a JSON object")
    missing = [f for f in ("ref", "after") if not isinstance(payload.get(f), str) or not payload[f]]
    if not urls:
        missing.append("repository.clone_url/html_url/ssh_url/git_url")
    if missing:
        raise Reply(400, "bad_request", f"push payload lacks {', '.join(missing)}")
    if not _REVISION.match(payload["after"]):
        raise Reply(400, "bad_request", f"push payload's after {payload['after']!r} is no SHA")
    for flag in ("forced", "deleted"):
        if not isinstance(payload.get(flag, False), bool):
            raise Reply(400, "bad_request", f"push payload's {flag} is not a boolean")
    repository = payload["repository"]
    name = repository.get("html_url") or repository.get("full_name") or min(urls)
    return Push(
        str(name),
        payload["ref"],
        payload["after"],
        payload.get("forced", False),
        payload.get("deleted", False),
    )


def failure(exc: Exception) -> Reply:
    """Sink failures: passing ones (the store is busy, a registry unreachable) are 503 so
    they are retried; terminal ones keep their 4xx; anything else is a bug: 500."""
    if isinstance(exc, RegistryError) and not exc.terminal:
        return Reply(503, "retry", exc.message)
    if isinstance(exc, SlipwayError):
        if exc.status >= 500:
            return Reply(503, "retry", exc.message)
        return Reply(exc.status, "failed", exc.message)
    log.exception("webhook handling failed")
    return Reply(500, "error", f"internal error: {type(exc).__name__}")


def _check_depth(body: bytes, limit: int) -> None:
    """Refuse JSON nested past ``limit`` before it is parsed (GitHub's form-encoded
    deliveries hide the brackets behind %-escapes, so the escaped ones count too)."""
    if json_depth(body.replace(b"%5B", b"[").replace(b"%7B", b"{"), limit) > limit:
        raise Reply(400, "bad_request", f"JSON nests deeper than {limit} (max_json_depth)")


def handle_github(
    sink: WebhookSink,
    headers: Mapping[str, str],
    body: bytes,
    detail: dict[str, Any],
    *,
    max_json_depth: int = EdgeLimits.max_json_depth,
    pulls: PullSink | None = None,
) -> Reply:
    """Verify, deduplicate and act on one GitHub delivery; ``detail`` gains audit fields.
    The payload is only a hint: the sink looks at the source itself. ``pull_request``
    deliveries go to ``pulls`` (preview environments) when there is one."""
    _check_depth(body, max_json_depth)
    event = headers.get("x-github-event", "")
    delivery = headers.get("x-github-delivery", "")
    payload, unreadable = _decode_github(body, headers.get("content-type", ""))
    urls = repository_urls(payload)
    detail["repository"] = sorted(urls)
    secrets = [s for s in sink.secrets_for_repository(urls) if s]
    if not secrets:
        return Reply(401, "unauthorized", "no webhook secret configured for this repository")
    signature = headers.get("x-hub-signature-256")
    if not signature:
        return Reply(401, "unauthorized", "X-Hub-Signature-256 header missing")
    if not signature_matches(body, signature, secrets):
        return Reply(401, "unauthorized", "X-Hub-Signature-256 does not match the body")
    # Signed from here on: the sender knows a secret.
    if not event:
        return Reply(400, "bad_request", "X-GitHub-Event header missing")
    if not delivery:
        return Reply(400, "bad_request", "X-GitHub-Delivery header missing")
    if unreadable:
        return Reply(400, "bad_request", unreadable)
    push = _parse_push(payload, urls) if event == "push" else None
    if sink.delivery_seen(delivery):
        return Reply(200, "duplicate", f"delivery {delivery} was handled already")
    if event == "ping":
        zen = payload.get("zen", "") if isinstance(payload, dict) else ""
        return Reply(200, "pong", zen=zen)
    if event == "pull_request" and pulls is not None:
        reply = _pull_request(pulls, payload, urls, detail)
        if reply.status >= 500 and isinstance(sink, ForgetsDeliveries):
            sink.forget_delivery(delivery)  # GitHub's redelivery is acted on
        return reply
    if push is None:
        return Reply(202, "ignored", f"{event} events are not acted on")
    detail.update(ref=push.ref, sha=push.after)
    try:
        services = sink.git_pushed(urls, push.ref, push.after, push.forced, push.deleted)
    except Exception as exc:  # noqa: BLE001 - every failure is answered and audited
        reply = failure(exc)
        if reply.status >= 500 and isinstance(sink, ForgetsDeliveries):
            sink.forget_delivery(delivery)
        return reply
    if not services:
        return Reply(
            202,
            "ignored",
            f"no service took {push.name} {push.ref} at {push.after}: none tracks it, or"
            " the source does not resolve it to that commit",
        )
    detail["services"] = services
    return Reply(202, "accepted", services=services)


def _pull_request(pulls: PullSink, payload: Any, urls: set[str], detail: dict[str, Any]) -> Reply:
    read = read_pull_event(payload)
    if isinstance(read, str):
        return Reply(400, "bad_request", read)
    action, number = read
    detail.update(action=action, number=number)
    if action not in ACTIONS:
        return Reply(202, "ignored", f"pull_request {action} is not acted on")
    try:
        done = pulls.pull_changed(urls, number, action)
    except Exception as exc:  # noqa: BLE001 - every failure is answered and audited
        return failure(exc)
    if done.services:
        detail["services"] = done.services
    return Reply(202, done.outcome, done.reason, services=done.services)


@dataclass
class _Tally:
    accepted: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    ignored: int = 0
    retry: bool = False


def _registry_host(event: dict[str, Any], target: dict[str, Any]) -> str:
    request = event.get("request")
    host = request.get("host") if isinstance(request, dict) else None
    if not isinstance(host, str) or not host:
        url = target.get("url")
        host = urlsplit(url).netloc if isinstance(url, str) else ""
    return host.lower()


def handle_registry(
    sink: WebhookSink,
    headers: Mapping[str, str],
    body: bytes,
    detail: dict[str, Any],
    *,
    max_json_depth: int = EdgeLimits.max_json_depth,
) -> Reply:
    """Authenticate one notification envelope and report each manifest push in it;
    pulls, deletes, mounts and blob pushes are counted as ignored."""
    token = sink.registry_token()
    if not token:
        return Reply(401, "unauthorized", "no registry notification token configured")
    if not token_matches(headers.get("authorization", ""), token):
        return Reply(401, "unauthorized", "Authorization bearer token missing or wrong")
    _check_depth(body, max_json_depth)
    try:
        envelope = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        return Reply(400, "bad_request", f"body is not valid JSON: {exc}")
    events = envelope.get("events") if isinstance(envelope, dict) else None
    if not isinstance(events, list):
        return Reply(400, "bad_request", "envelope lacks an events list")
    tally = _Tally()
    for event in events:
        _registry_event(sink, event, tally)
    detail.update(
        events=len(events), accepted=tally.accepted, failed=tally.failed, ignored=tally.ignored
    )
    content = {"accepted": tally.accepted, "failed": tally.failed, "ignored": tally.ignored}
    if tally.retry:
        return Reply(503, "retry", "a passing failure; send the batch again", **content)
    return Reply(200, "accepted" if tally.accepted else "ignored", **content)


def _registry_event(sink: WebhookSink, event: Any, tally: _Tally) -> None:
    target = event.get("target") if isinstance(event, dict) else None
    if not isinstance(target, dict) or event.get("action") != "push":
        tally.ignored += 1
        return
    if target.get("mediaType") not in MANIFEST_MEDIA_TYPES:
        tally.ignored += 1  # a layer or config blob
        return
    host, repository = _registry_host(event, target), target.get("repository")
    digest, tag = target.get("digest"), target.get("tag") or None
    seen = {"host": host, "repository": repository, "tag": tag, "digest": digest}
    if not (host and isinstance(repository, str) and repository and isinstance(digest, str)):
        tally.failed.append({**seen, "reason": "event lacks host, repository or digest"})
        return
    try:
        services = sink.image_pushed(
            host, repository, tag if isinstance(tag, str) else None, digest
        )
    except Exception as exc:  # noqa: BLE001 - every failure is answered and audited
        reply = failure(exc)
        tally.retry |= reply.status == 503
        tally.failed.append({**seen, "reason": reply.reason})
        return
    if services:
        tally.accepted.append({**seen, "services": services})
    else:
        tally.ignored += 1
