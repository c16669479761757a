"""Which sources the services track, and what happens when one moves.

The tracker turns services into ``Watch``es (one per distinct source, however
many services follow it), hands what polls and webhooks find to the deployment
rules, and writes what went wrong to the services' events streams, once per
change of state rather than once per poll.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from apscheduler.schedulers.base import BaseScheduler

from ..config import Settings
from ..connections import Connections, normalize_url
from ..errors import SlipwayError
from ..models import ServiceSpec
from ..observe.audit import AuditTrail
from ..records import Service
from ..services import Services
from ..sources.registry import ImageRef
from ..store import Store
from . import Found, Watch
from .intervals import TAG_POLL_INTERVAL, TAG_TRACK_TAGS, parse_interval
from .poll import Poller

log = logging.getLogger("slipway.triggers")
audit_log = logging.getLogger("slipway.audit")

DELIVERY_MEMORY = 7 * 24 * 3600  # seconds a webhook delivery id is remembered


class Tracker:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        services: Services,
        connections: Connections,
        check: Callable[[Watch], Found],
        note: Callable[[str, str], None],
        credentials: Callable[[str, str], tuple[str, str] | None],
        scheduler: BaseScheduler | None = None,
        trail: AuditTrail | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.services = services
        self.connections = connections
        self.check = check
        self.note = note
        self.credentials = credentials  # (image identifier, repository type) -> login
        self.trail = trail  # where webhook deliveries are audited
        self.poller = Poller(self.watches, check, self.found, self.poll_failed, scheduler=scheduler)
        self._errors: dict[str, str] = {}  # watch key -> last error reported
        self._lock = threading.Lock()

    # -- watches --------------------------------------------------------------------

    def watch_for(self, service: Service, spec: ServiceSpec) -> Watch | None:
        tags = self.store.get_tags(service.arn)
        interval = self.settings.poll_interval
        if TAG_POLL_INTERVAL in tags:
            interval = parse_interval(tags[TAG_POLL_INTERVAL]) or interval
        interval = max(interval, 1.0)
        track = tags.get(TAG_TRACK_TAGS) or None
        source = spec.source
        if source.code:
            arn = source.connection_arn
            url = source.code.repository_url
            return Watch(
                key=f"git|{normalize_url(url)}|{source.code.branch}|{track or ''}|{arn or ''}",
                kind="git",
                location=url,
                ref=source.code.branch,
                track_tags=track,
                interval=interval,
                service_ids=(service.id,),
                credentials=lambda: self.connections.token_for_repository(arn, url),
            )
        identifier = source.image.identifier
        ref = ImageRef.parse(identifier)
        if ref.digest and not track:
            return None  # pinned: nothing can move
        location = f"{ref.registry}/{ref.repository}"
        kind = source.image.repository_type
        return Watch(
            key=f"image|{location}|{ref.tag or ''}|{track or ''}|{kind}",
            kind="image",
            location=location,
            ref=ref.tag or "latest",
            track_tags=track,
            interval=interval,
            service_ids=(service.id,),
            credentials=lambda: self.credentials(identifier, kind),
        )

    def watches(self) -> list[Watch]:
        merged: dict[str, Watch] = {}
        for service in self.store.list_services():
            if service.status in ("CREATE_FAILED", "DELETE_FAILED"):
                continue
            watch = self.watch_for(service, service.spec)
            if watch is None:
                continue
            seen = merged.get(watch.key)
            if seen:
                watch = dataclasses.replace(
                    seen,
                    interval=min(seen.interval, watch.interval),
                    service_ids=seen.service_ids + watch.service_ids,
                )
            merged[watch.key] = watch
        return list(merged.values())

    def newest(self, service: Service, spec: ServiceSpec) -> Found:
        """What the service's source offers now (StartDeployment's "newest revision")."""
        watch = self.watch_for(service, spec)
        if watch is None:  # an image pinned by digest
            ref = ImageRef.parse(spec.source.image.identifier)
            return Found(revision=ref.digest, ref=ref.digest)
        return self.check(watch)

    # -- what polls find -------------------------------------------------------------

    def found(self, watch: Watch, found: Found, trigger: str = "poll") -> None:
        with self._lock:
            recovered = self._errors.pop(watch.key, None)
        for service_id in watch.service_ids:
            if recovered:
                self.note(service_id, f"{watch.location} {watch.ref} reachable again")
            self.services.revision_detected(
                service_id, found.revision, ref=found.ref, trigger=trigger
            )

    def poll_failed(self, watch: Watch, exc: SlipwayError, retry_in: float) -> None:
        with self._lock:
            changed = self._errors.get(watch.key) != exc.message
            self._errors[watch.key] = exc.message
        if not changed:
            return
        for service_id in watch.service_ids:
            self.note(
                service_id,
                f"cannot check {watch.location} {watch.ref}: {exc.message};"
                f" retrying in {retry_in:.0f}s; the running revision keeps serving",
            )

    # -- what webhooks bring (triggers.webhooks.WebhookSink) -------------------------

    def secrets_for_repository(self, urls: set[str]) -> list[str]:
        return self.connections.webhook_secrets(urls)

    def delivery_seen(self, delivery_id: str) -> bool:
        return not self.store.record_delivery(delivery_id, time.time(), DELIVERY_MEMORY)

    def registry_token(self) -> str | None:
        return self.settings.registry_webhook_token or None

    def _look(self, watch: Watch, claimed: str, trigger: str) -> bool:
        """A webhook's hint: look at the source now and hand on what it resolves to (a
        revision already live or queued changes nothing). True when that is ``claimed``;
        otherwise the service's events stream says the payload was not believed."""
        found = self.check(watch)
        self.found(watch, found, trigger=trigger)
        if found.revision == claimed:
            return True
        for service_id in watch.service_ids:
            self.note(
                service_id,
                f"a {trigger} named {claimed} for {watch.location} {watch.ref}, but the"
                f" source resolves it to {found.revision}; only that is deployed",
            )
        return False

    def git_pushed(
        self, urls: set[str], ref: str, sha: str, forced: bool, deleted: bool
    ) -> list[str]:
        wanted = {normalize_url(u) for u in urls}
        taken = []
        for service in self.store.list_services():
            spec = service.spec
            code = spec.source.code
            if not code or normalize_url(code.repository_url) not in wanted:
                continue
            watch = self.watch_for(service, spec)
            if watch.track_tags:
                if ref.startswith("refs/tags/"):
                    self.poller.poll_now(
                        watch.key
                    )  # the newest matching tag decides, not this push
                    taken.append(service.name)
                continue
            if ref != f"refs/heads/{code.branch}":
                continue
            if deleted:
                self.note(
                    service.id,
                    f"branch {code.branch} was deleted; the running revision keeps serving",
                )
                continue
            if not self._look(watch, sha, "webhook"):
                continue
            if forced:
                self.note(service.id, f"branch {code.branch} was force-pushed to {sha}")
            taken.append(service.name)
        return taken

    def image_pushed(
        self, registry_host: str, repository: str, tag: str | None, digest: str
    ) -> list[str]:
        taken = []
        for service in self.store.list_services():
            spec = service.spec
            if not spec.source.image:
                continue
            ref = ImageRef.parse(spec.source.image.identifier)
            if (ref.registry, ref.repository) != (registry_host, repository):
                continue
            watch = self.watch_for(service, spec)
            if watch is None:
                continue
            if watch.track_tags:
                self.poller.poll_now(watch.key)
            elif tag != watch.ref or not self._look(watch, digest, "registry notification"):
                continue
            taken.append(service.name)
        return taken

    def audit(self, source: str, outcome: str, detail: dict[str, Any]) -> None:
        """A log line and a row of the audit trail (``slipway audit``), operation
        ``webhook:github`` or ``webhook:registry``."""
        audit_log.info("%s %s %s", source, outcome, detail)
        if self.trail is not None:
            self.trail.record(
                None,
                None,
                source or None,
                None,
                f"webhook:{detail.get('hook', '')}",
                detail,
                outcome,
                detail.get("request_id"),
            )
