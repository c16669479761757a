"""A service's traffic split and revision tags, set by a user (``slipway traffic``,
``slipway revisions tag``): checked completely first (``traffic.py``), then carried out
as work on the service's queue, so no operation runs meanwhile: the revisions it names
that have no instance get them, from their kept release, and once they are healthy the
split is stored and routed; instances it no longer reaches drain out of the route and
stop. A refused or failed change leaves the routing as it was.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from ..backends import Backend, Instance
from ..config import Settings
from ..errors import InvalidRequest, InvalidState, SlipwayError
from ..records import Service
from ..releases import Release
from ..services import Services
from ..store import Store
from ..traffic import (
    TAG_ROLLOUT,
    TAG_SEPARATOR,
    Split,
    check_tag,
    parse_shares,
    resolve_revision,
    resolve_shares,
)
from ..workers import WORKER_TAG
from .journal import Journal
from .queue import OperationQueue
from .rollout import Rollout, instance_spec
from .routes import Routes
from .runner import Runner, Task


class Splits:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        services: Services,
        backend: Backend,
        routes: Routes,
        rollout: Rollout,
        runner: Runner,
        queue: OperationQueue,
        journal: Journal,
    ) -> None:
        self.store = store
        self.settings = settings
        self.services = services
        self.backend = backend
        self.routes = routes
        self.rollout = rollout
        self.runner = runner
        self.queue = queue
        self.journal = journal

    # -- what the API asks ---------------------------------------------------------

    def describe(self, arn: str) -> dict[str, Any]:
        """The split, the tags with their URLs, and the rollout policy, for people."""
        service = self.services.service(arn)
        split = self.store.get_split(service.id)
        names = {**split.revisions}
        if service.live_deployment_id:
            names[service.live_deployment_id] = service.live_revision or ""
        shares = split.shares or (
            {service.live_deployment_id: 100} if service.live_deployment_id else {}
        )
        return {
            "Traffic": [
                {"Revision": names.get(d, ""), "Percent": p, "DeploymentId": d}
                for d, p in sorted(shares.items(), key=lambda item: -item[1])
            ],
            "RevisionTags": [
                {
                    "Tag": tag,
                    "Revision": names.get(d, ""),
                    "DeploymentId": d,
                    "Url": "http://"
                    + self.settings.service_url(f"{tag}{TAG_SEPARATOR}{service.hostname}"),
                }
                for tag, d in sorted(split.tags.items())
            ],
            "RolloutPolicy": self.store.get_tags(service.arn).get(TAG_ROLLOUT),
        }

    def set_traffic(self, arn: str, entries: list[str] | None) -> dict[str, Any]:
        """Split the main route by ``entries`` (``REV=PERCENT``); None: the live
        revision takes all (``--to-latest``)."""
        service = self._splittable(arn, "split its traffic")
        split = self.store.get_split(service.id)
        deployments = self._deployments(service)
        if entries is None:
            new = split.without_shares()
        else:
            shares = resolve_shares(parse_shares(entries), deployments)
            shares = {d: p for d, p in shares.items() if p > 0}
            if set(shares) == {service.live_deployment_id}:
                shares = {}  # the live revision at 100%: no split
            names = {d: deployments[d] for d in {*shares, *split.tags.values()}}
            new = Split(shares, dict(split.tags), names)
        said = ", ".join(f"{p}% to {new.revisions[d][:19]}" for d, p in new.shares.items())
        self._carry_out(service, new, f"traffic: {said or 'all to the live revision'}")
        return self.describe(arn)

    def tag(self, arn: str, revision: str, tag: str) -> dict[str, Any]:
        """Reach ``revision`` at ``<tag>--<service>.<base_domain>`` (a tag given to
        another revision moves)."""
        service = self._splittable(arn, "tag its revisions")
        others = [s for s in self.store.list_services() if s.id != service.id]
        check_tag(tag, service.hostname, [n for s in others for n in (s.name, s.hostname)])
        deployments = self._deployments(service)
        deployment = resolve_revision(revision, deployments)
        split = self.store.get_split(service.id)
        tags = {**split.tags, tag: deployment}
        names = {d: deployments[d] for d in {*split.shares, *tags.values()}}
        label = f"{tag}{TAG_SEPARATOR}{service.hostname}"
        url = self.settings.service_url(label)
        self._carry_out(
            service,
            Split(dict(split.shares), tags, names),
            f"revision {deployments[deployment][:19]} tagged {tag}: http://{url}",
        )
        return self.describe(arn)

    def untag(self, arn: str, tag: str) -> dict[str, Any]:
        service = self._splittable(arn, "untag its revisions")
        split = self.store.get_split(service.id)
        if tag not in split.tags:
            known = ", ".join(sorted(split.tags)) or "none"
            raise InvalidRequest(f"{service.name} has no revision tag {tag!r}; its tags: {known}")
        tags = {t: d for t, d in split.tags.items() if t != tag}
        names = {d: r for d, r in split.revisions.items() if d in {*split.shares, *tags.values()}}
        self._carry_out(
            service, Split(dict(split.shares), tags, names), f"revision tag {tag} removed"
        )
        return self.describe(arn)

    # -- rules -----------------------------------------------------------------------

    def _splittable(self, arn: str, action: str) -> Service:
        service = self.services.live_service(arn)
        if service.status == "PAUSED":
            raise InvalidState(f"Service {service.name} is paused; resume it before you {action}")
        if WORKER_TAG in self.store.get_tags(service.arn):
            raise InvalidState(f"Service {service.name} is a worker service: it has no route")
        if service.status != "RUNNING" or not service.live_deployment_id:
            raise InvalidState(
                f"Service {service.name} is in status {service.status}; you can {action}"
                " only when it is RUNNING and no operation is in progress"
            )
        return service

    def _deployments(self, service: Service) -> dict[str, str]:
        """Deployment id -> revision of every revision the service can run again, the
        live one first (a revision deployed twice is reached through its newest)."""
        out = {service.live_deployment_id or "": service.live_revision or ""}
        for row in self.services.rollback_candidates(service):
            if row.revision != service.live_revision:
                out.setdefault(row.operation_id, row.revision)
        return out

    # -- acting ----------------------------------------------------------------------

    def _carry_out(self, service: Service, split: Split, message: str) -> None:
        """Run the change as the service's work of the moment and wait for its end."""
        if not self.queue.claim(service.id):
            raise InvalidState(
                f"Service {service.name} has an operation or scaling move under way; try"
                " again when it is RUNNING"
            )
        done = threading.Event()
        outcome: list[BaseException | None] = [None]

        def ended(_result: object, error: BaseException | None) -> None:
            outcome[0] = error
            self.queue.release(service.id)
            done.set()

        self.runner.spawn(self._apply(service, split, message), ended)
        done.wait()
        if outcome[0] is not None:
            error = outcome[0]
            if isinstance(error, SlipwayError):
                raise error
            raise SlipwayError(f"the traffic change failed: {error}") from error

    def _apply(self, service: Service, split: Split, message: str) -> Task:
        instances = self.backend.list_instances(service.id)
        running = {i.deployment_id for i in instances if i.running}
        started: list[Instance] = []
        try:
            for deployment in sorted(split.kept() - running):
                started += yield from self._start(service, deployment)
        except SlipwayError:
            for inst in started:
                self.backend.stop_instance(inst.id, timeout=2)
            raise
        self.store.put_split(service.id, split)
        self.routes.apply()
        self.journal.note(service.id, message)
        kept = split.kept() | {service.live_deployment_id}
        yield from self.routes.leave([i for i in instances if i.deployment_id not in kept])

    def _start(self, service: Service, deployment: str) -> Task:
        """Healthy instances (the service's MinSize) of a revision's kept release."""
        rows = [r for r in self.store.list_revisions(service.id) if r.operation_id == deployment]
        if not rows or not rows[0].detail:
            raise InvalidRequest(f"the release of deployment {deployment} is no longer kept")
        release = Release.from_dict(rows[0].detail)
        spec = service.spec
        env = self.rollout.instance_env(service, spec, release)
        count = max(1, self.services.auto_scaling_for(spec)["min_size"])
        base = int(time.time() * 1000) % 10**9  # names apart from earlier instances'
        started = []
        try:
            for n in range(count):
                started.append(
                    self.backend.start_instance(
                        instance_spec(service, spec, release, env, deployment, base + n)
                    )
                )
            for inst in started:
                yield from self.rollout.wait_healthy(inst, spec, release.port, service.id)
        except SlipwayError:
            for inst in started:
                self.backend.stop_instance(inst.id, timeout=2)
            raise
        self.journal.note(
            service.id, f"started {count} instance(s) of revision {release.revision[:19]}"
        )
        return started
