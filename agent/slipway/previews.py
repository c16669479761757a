"""Preview environments: each open pull request of a code service that enables them (tag
``slipway:previews``) gets a service ``<name>-pr-<number>`` of its own.

A reconciler per pull request, converging from whatever it finds: GitHub's word on the
pull request (read through the parent's connection, never taken from a payload), the
preview services (tag ``slipway:preview-of``) and the policy. Webhooks
(``triggers/pulls.py``) converge one pull request at once; the ``previews`` job
converges every open one (when the parent polls), removes previews past their TTL or
beyond the maximum, and keeps each pull request's one comment saying what its preview
does. The decisions are in ``preview_rules.py``.

A preview copies its parent's configuration with the pull request's head branch as its
branch, so pushes to it redeploy it like any tracked branch. Same-repository previews
are granted the parent's secrets; a fork's preview never is: it has no connection, no
``RuntimeEnvironmentSecrets`` and no grant, so an ``apprunner.yaml`` of the fork that
names a secret fails its deployment instead of reading it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from .config import Settings
from .connections import Connections, normalize_url
from .errors import InvalidRequest, InvalidState, SlipwayError
from .preview_rules import (
    TAG_PREVIEW_ENV,
    TAG_PREVIEW_OF,
    TAG_PREVIEW_PR,
    TAG_PREVIEWS,
    LivePreview,
    PreviewPolicy,
    Pull,
    comment,
    marker,
    parse_policy,
    preview_name,
    preview_params,
    refusal,
    to_remove,
)
from .records import Service
from .service_secrets import Secrets
from .services import Services
from .sources.github_pulls import PullRequests
from .store import Store
from .triggers.pulls import PullOutcome

log = logging.getLogger("slipway.previews")

OPEN_PULLS_READ = 100  # open pull requests a poll reads per parent


class Previews:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        services: Services,
        connections: Connections,
        pulls: PullRequests,
        secrets: Secrets,
        note: Callable[[str, str], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.settings = settings
        self.services = services
        self.connections = connections
        self.pulls = pulls
        self.secrets = secrets
        self.note = note
        self.clock = clock
        self._lock = threading.RLock()  # one reconciliation at a time: webhook or job
        self._said: dict[tuple[str, int], str] = {}  # (parent id, number) -> comment body
        self._trouble: dict[str, str] = {}  # parent id -> the last problem noted
        # (parent id, number) -> the commit of a preview removed for its TTL or the maximum:
        # polls do not bring it back while the pull request's head stays there (kept in
        # memory: after a restart such a preview is made once more, then judged again).
        self._retired: dict[tuple[str, int], str | None] = {}

    # -- who is what ----------------------------------------------------------------

    def is_preview(self, service: Service) -> bool:
        return TAG_PREVIEW_OF in self.store.get_tags(service.arn)

    def _policy(self, parent: Service, tags: dict[str, str]) -> PreviewPolicy | None:
        """The parent's policy, or None (said once in its events) when it cannot have one."""
        try:
            policy = parse_policy(
                tags[TAG_PREVIEWS],
                ttl=self.settings.preview_ttl,
                max_previews=self.settings.preview_max,
            )
            source = parent.spec.source
            if not source.code or not source.connection_arn:
                raise InvalidRequest(
                    "previews need a code service with a GitHub connection; none are made"
                )
        except InvalidRequest as exc:
            self._trouble_once(parent, exc.message)
            return None
        return policy

    def parents(self) -> list[tuple[Service, PreviewPolicy]]:
        found = []
        for service in self.store.list_services():
            tags = self.store.get_tags(service.arn)
            if TAG_PREVIEWS in tags and TAG_PREVIEW_OF not in tags:
                policy = self._policy(service, tags)
                if policy is not None:
                    found.append((service, policy))
        return found

    def previews(self) -> dict[str, dict[int, Service]]:
        """Parent ARN -> number -> preview, without those being deleted."""
        found: dict[str, dict[int, Service]] = {}
        for service in self.store.list_services():
            tags = self.store.get_tags(service.arn)
            if TAG_PREVIEW_OF not in tags or self._deleting(service):
                continue
            number = int(tags.get(TAG_PREVIEW_PR, "0") or 0)
            found.setdefault(tags[TAG_PREVIEW_OF], {})[number] = service
        return found

    def _deleting(self, service: Service) -> bool:
        return any(
            op.type == "DELETE_SERVICE" and op.status in ("PENDING", "IN_PROGRESS")
            for op in self.store.list_operations(service.id)
        )

    # -- webhooks (triggers.pulls.PullSink) -------------------------------------------

    def pull_changed(self, urls: set[str], number: int, action: str) -> PullOutcome:
        wanted = {normalize_url(u) for u in urls}
        with self._lock:
            parents = [
                (p, policy)
                for p, policy in self.parents()
                if normalize_url(p.spec.source.code.repository_url) in wanted
            ]
            if not parents:
                named = min(urls) if urls else "this repository"
                return PullOutcome("ignored", f"no service with previews enabled builds {named}")
            prompted = action != "closed"
            outcomes = [
                self._converge(p, policy, number, prompted=prompted) for p, policy in parents
            ]
        for kind in ("accepted", "refused"):
            if any(o.outcome == kind for o in outcomes):
                services = [s for o in outcomes for s in o.services]
                reason = "; ".join(o.reason for o in outcomes if o.outcome == kind and o.reason)
                return PullOutcome(kind, reason, services)
        return PullOutcome("ignored", "; ".join(o.reason for o in outcomes))

    # -- one pull request -------------------------------------------------------------

    def _converge(
        self,
        parent: Service,
        policy: PreviewPolicy,
        number: int,
        pull: Pull | None = None,
        *,
        prompted: bool = False,
    ) -> PullOutcome:
        """Make the preview of pull request ``number`` what GitHub says it should be.
        ``prompted``: a delivery asked for it (opened, reopened, a push), so a preview
        retired for its TTL or the maximum comes back."""
        code = parent.spec.source.code
        if pull is None:
            pull = self.pulls.pull(self._token(parent), code.repository_url, number)
        existing = self.previews().get(parent.arn, {}).get(number)
        name = preview_name(parent.name, number)
        if pull is None or not pull.open:
            why = (
                f"pull request #{number} does not exist"
                if pull is None
                else f"pull request #{number} was {'merged' if pull.merged else 'closed'}"
            )
            if existing is None:
                return PullOutcome("ignored", f"{why}; no preview {name} is left to remove")
            self._remove(parent, existing, number, why)
            return PullOutcome("accepted", f"{why}; removing {name}", [name])
        why = refusal(pull, policy, parent.name)
        if why is not None:
            self._say(parent, number, comment(marker(parent.name), name, "not built", None, why))
            return PullOutcome("refused", why)
        if existing is None:
            retired = (parent.id, number)
            if not prompted and self._retired.get(retired, "") == pull.head_sha:
                return PullOutcome("ignored", f"{name} was retired; a push brings it back")
            self._retired.pop(retired, None)
            self._create(parent, pull, name)
            self._say(
                parent,
                number,
                comment(marker(parent.name), name, "building", None, f"commit {pull.head_sha}"),
            )
            self._expire(parent, policy)
            return PullOutcome("accepted", f"creating {name}", [name])
        self.services.revision_detected(
            existing.id, pull.head_sha, ref=f"refs/heads/{pull.head_ref}", trigger="pull request"
        )
        self._refresh(parent, number, self.store.get_service(existing.id) or existing)
        return PullOutcome("accepted", f"{name} follows {pull.head_sha}", [name])

    def _create(self, parent: Service, pull: Pull, name: str) -> None:
        tags = self.store.get_tags(parent.arn)
        params = preview_params(parent.spec, parent.arn, tags, pull, name)
        code = params["SourceConfiguration"]["CodeRepository"]
        values = code["CodeConfiguration"].get("CodeConfigurationValues")
        overrides = any(k.startswith(TAG_PREVIEW_ENV) for k in tags)
        # Granted before the preview exists, so its first deployment reads them; taken
        # back if it is not made after all.
        rows = [] if pull.fork else self.secrets.list()
        granted = [r["name"] for r in rows if parent.name in r["grants"]]
        for secret in granted:
            self.secrets.grant(secret, name)
        try:
            service, _ = self.services.create_service(params)
        except SlipwayError:
            for secret in granted:
                self.secrets.revoke(secret, name)
            raise
        self.note(
            parent.id,
            f"preview {name} of pull request #{pull.number} created from {pull.head_sha}"
            + (" (a fork: no secrets)" if pull.fork else ""),
        )
        if overrides and values is None:
            self.note(
                service.id,
                "preview env overrides apply to services configured through the API;"
                " this one's apprunner.yaml decides its environment",
            )

    def _remove(self, parent: Service, preview: Service, number: int, why: str) -> None:
        try:
            self.services.delete_service(preview.arn)
        except InvalidState:
            return  # being deleted already, or deleted since
        for row in self.secrets.list():
            if preview.name in row["grants"]:
                self.secrets.revoke(row["name"], preview.name)
        self.note(parent.id, f"preview {preview.name} removed: {why}")
        self._say(parent, number, comment(marker(parent.name), preview.name, "removed", None, why))
        try:
            code = parent.spec.source.code
            self.pulls.deactivate(self._token(parent), code.repository_url, preview.name)
        except SlipwayError as exc:
            self.note(parent.id, f"cannot retire the GitHub deployments of {preview.name}: {exc}")

    def _refresh(self, parent: Service, number: int, preview: Service) -> None:
        """The comment says what the preview does now."""
        url = f"http://{self.settings.service_url(preview.hostname)}"
        live, newest = preview.live_revision, preview.latest_revision
        if preview.status == "CREATE_FAILED":
            state, url_shown, detail = "failed", None, f"see `slipway logs {preview.name}`"
        elif preview.status == "OPERATION_IN_PROGRESS":
            state, url_shown = "deploying", url if live else None
            detail = f"building commit {newest}" if newest else ""
        elif preview.status == "RUNNING" and live:
            state, url_shown, detail = "ready", url, f"serving commit {live}"
        else:
            state, url_shown, detail = preview.status.lower(), None, ""
        self._say(
            parent, number, comment(marker(parent.name), preview.name, state, url_shown, detail)
        )

    def _say(self, parent: Service, number: int, body: str) -> None:
        """Edit the pull request's comment to ``body``, unless it says that already."""
        key = (parent.id, number)
        if self._said.get(key) == body:
            return
        code = parent.spec.source.code
        try:
            self.pulls.upsert_comment(
                self._token(parent), code.repository_url, number, marker(parent.name), body
            )
        except SlipwayError as exc:
            self._trouble_once(parent, f"cannot comment on pull request #{number}: {exc}")
            return
        self._said[key] = body

    def _token(self, parent: Service) -> str:
        token = self.connections.token(parent.spec.source.connection_arn)
        if not token:
            raise InvalidState(f"service {parent.name} has no connection to read GitHub with")
        return token

    def _trouble_once(self, parent: Service, message: str) -> None:
        if self._trouble.get(parent.id) != message:
            self._trouble[parent.id] = message
            self.note(parent.id, f"previews: {message}")

    # -- the job ------------------------------------------------------------------------

    def sweep(self) -> None:
        """Converge every parent's previews: poll open pull requests (unless poll=no),
        remove previews whose pull request closed, past their TTL or beyond the maximum,
        and previews whose parent is gone or no longer enables them."""
        with self._lock:
            parents = self.parents()
            enabled = {p.arn for p, _ in parents}
            for parent_arn, previews in self.previews().items():
                if parent_arn not in enabled:
                    self._orphaned(parent_arn, previews)
            for parent, policy in parents:
                try:
                    self._sweep_parent(parent, policy)
                except SlipwayError as exc:
                    self._trouble_once(parent, exc.message)

    def _orphaned(self, parent_arn: str, previews: dict[int, Service]) -> None:
        parent = self.store.service_by_arn(parent_arn)
        for number, preview in previews.items():
            if parent is not None and parent.status != "DELETED":
                self._remove(parent, preview, number, "previews were disabled")
                continue
            try:
                self.services.delete_service(preview.arn)
            except InvalidState:
                continue
            log.info("preview %s removed: its parent is gone", preview.name)

    def _sweep_parent(self, parent: Service, policy: PreviewPolicy) -> None:
        if policy.poll:
            code = parent.spec.source.code
            pulls = self.pulls.open_pulls(self._token(parent), code.repository_url, OPEN_PULLS_READ)
            for pull in pulls:
                self._converge(parent, policy, pull.number, pull)
            open_numbers = {p.number for p in pulls}
            for number in set(self.previews().get(parent.arn, {})) - open_numbers:
                self._converge(parent, policy, number)
        mine = self.previews().get(parent.arn, {})
        for number, preview in mine.items():
            self._refresh(parent, number, preview)
        self._expire(parent, policy)

    def _expire(self, parent: Service, policy: PreviewPolicy) -> None:
        mine = self.previews().get(parent.arn, {})
        live = [
            LivePreview(
                name=s.name,
                number=n,
                created_at=s.created_at,
                changed_at=s.updated_at,
                busy=s.status == "OPERATION_IN_PROGRESS",
            )
            for n, s in mine.items()
        ]
        for preview, why in to_remove(live, policy, self.clock()):
            service = mine[preview.number]
            built = service.live_revision or service.latest_revision
            self._retired[(parent.id, preview.number)] = built
            self._remove(parent, service, preview.number, why)
