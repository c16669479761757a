"""The plan carried out through this host's API, item by item, in the plan's order
(connections and configurations before the services that name them, services before
their custom domains). An item either fully imports or is undone: revisions created
for a name are deleted when a later one fails; a service is deleted when it does not
reach RUNNING, with the secrets put for it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..client import Client
from ..errors import SlipwayError
from .account import SourceAccount
from .images import copy_image
from .plan import (
    AUTO_SCALING,
    CONNECTION,
    CREATE,
    DOMAIN,
    NOTHING,
    SERVICE,
    SKIP,
    Item,
    Plan,
    translate,
)

CREATED, FAILED = "created", "failed"

_CREATE_CALLS = {
    CONNECTION: ("CreateConnection", "Connection", "ConnectionArn"),
    AUTO_SCALING: (
        "CreateAutoScalingConfiguration",
        "AutoScalingConfiguration",
        "AutoScalingConfigurationArn",
    ),
}
_OBS_CALL = (
    "CreateObservabilityConfiguration",
    "ObservabilityConfiguration",
    "ObservabilityConfigurationArn",
)
_DELETE_CALLS = {
    "AutoScalingConfigurationArn": "DeleteAutoScalingConfiguration",
    "ObservabilityConfigurationArn": "DeleteObservabilityConfiguration",
    "ConnectionArn": "DeleteConnection",
}


@dataclass
class Outcome:
    item: Item
    result: str  # created, failed (undone), or the plan's action when nothing was tried
    reason: str = ""


class Importer:
    def __init__(
        self,
        source: SourceAccount,
        target: Client,
        *,
        wait_seconds: float = 900.0,
        say: Callable[[str], None] = lambda _line: None,
    ) -> None:
        """``wait_seconds`` bounds how long a new service may take to reach RUNNING
        (a code service builds first) before it is undone."""
        self.source = source
        self.target = target
        self.wait_seconds = wait_seconds
        self.say = say

    def apply(self, plan: Plan) -> list[Outcome]:
        outcomes: list[Outcome] = []
        started: list[tuple[Item, str, list[str]]] = []  # service, its ARN, secrets put
        for item in plan.items:
            if item.action != CREATE:
                outcomes.append(Outcome(item, item.action, item.detail))
                continue
            if item.kind == DOMAIN:
                continue  # once its service runs
            try:
                if item.kind == SERVICE:
                    started.append(self._start_service(item, plan))
                    continue
                self._create_revisions(item, plan)
                outcomes.append(Outcome(item, CREATED))
            except SlipwayError as exc:
                outcomes.append(Outcome(item, FAILED, exc.message))
        # Custom domains go on services that run here: those made now, and those that were.
        running = {i.name for i in plan.items if i.kind == SERVICE and i.action == NOTHING}
        for item, arn, secrets in started:
            try:
                self._wait_running(item, arn)
                running.add(item.name)
                outcomes.append(Outcome(item, CREATED))
            except SlipwayError as exc:
                self._undo_service(arn, secrets)
                outcomes.append(Outcome(item, FAILED, f"{exc.message}; the service was deleted"))
        failed = {o.item.name for o in outcomes if o.item.kind == SERVICE and o.result == FAILED}
        for item in plan.items:
            if item.kind == DOMAIN and item.action == CREATE:
                outcomes.append(self._domain(item, running, failed))
        return outcomes

    # -- configurations and connections -----------------------------------------------

    def _create_revisions(self, item: Item, plan: Plan) -> None:
        """Every revision of one name, or none: those made are deleted on a failure."""
        operation, member, arn_key = _CREATE_CALLS.get(item.kind, _OBS_CALL)
        made: list[str] = []
        try:
            for request, source_arn in zip(item.requests, item.source_arns, strict=True):
                arn = self.target.call(operation, **request)[member][arn_key]
                made.append(arn)
                plan.arns[source_arn] = arn
                self.say(f"created {item.kind} {item.name} ({arn})")
        except SlipwayError:
            for arn in reversed(made):
                self._quietly(_DELETE_CALLS[arn_key], **{arn_key: arn})
            raise

    # -- services ---------------------------------------------------------------------

    def _start_service(self, item: Item, plan: Plan) -> tuple[Item, str, list[str]]:
        params = translate(item.requests[0], plan.arns)
        if params is None:
            raise SlipwayError("a configuration or connection it names was not imported")
        if item.image_copy:
            copy_image(self.source, *item.image_copy)
            self.say(f"pushed {item.image_copy[0]} to {item.image_copy[1]}")
        put: list[str] = []
        try:
            for need in item.secrets:
                if need.present and need.granted:
                    continue
                if need.present:
                    body = {"Name": need.name, "Service": item.name}
                    self.target.signed("PUT", "/slipway/v1/secrets/grants", body)
                    continue
                try:
                    value = self.source.secret_value(need.reference)
                except SlipwayError as exc:
                    raise SlipwayError(
                        f"secret {need.name} ({need.variable}): {exc.message}; put it with"
                        f" `slipway secrets put {need.name} --service {item.name}` and import"
                        " again"
                    ) from exc
                body = {"Name": need.name, "SecretString": value, "Services": [item.name]}
                self.target.signed("PUT", "/slipway/v1/secrets", body)
                put.append(need.name)
            answer = self.target.call("CreateService", **params)
        except SlipwayError:
            self._undo_service(None, put)
            raise
        self.say(f"creating service {item.name}: operation {answer['OperationId']}")
        return item, answer["Service"]["ServiceArn"], put

    def _wait_running(self, item: Item, arn: str) -> None:
        deadline = time.monotonic() + self.wait_seconds
        while True:
            status = self.target.call("DescribeService", ServiceArn=arn)["Service"]["Status"]
            if status == "RUNNING":
                return
            if status != "OPERATION_IN_PROGRESS":
                raise SlipwayError(f"went {status} here (`slipway events {item.name}` says why)")
            if time.monotonic() > deadline:
                raise SlipwayError(f"not RUNNING after {self.wait_seconds:.0f}s (--wait-seconds)")
            time.sleep(2)

    def _undo_service(self, arn: str | None, secrets: list[str]) -> None:
        if arn:
            self._quietly("DeleteService", ServiceArn=arn)
        for name in secrets:
            try:
                self.target.signed("DELETE", "/slipway/v1/secrets", {"Name": name})
            except SlipwayError as exc:
                self.say(f"could not delete secret {name} while undoing: {exc.message}")

    # -- custom domains ---------------------------------------------------------------

    def _domain(self, item: Item, running: set[str], failed: set[str]) -> Outcome:
        if item.service not in running:
            why = "failed" if item.service in failed else "was not created"
            return Outcome(item, SKIP, f"its service {item.service} {why}")
        try:
            arn = self.target.service_arn(item.service)
            answer = self.target.call("AssociateCustomDomain", ServiceArn=arn, **item.requests[0])
        except SlipwayError as exc:
            return Outcome(item, FAILED, exc.message)
        www = ["www." + item.name] if item.requests[0].get("EnableWWWSubdomain") else []
        item.todo = [
            f"DNS: {name} CNAME {answer['DNSTarget']} (was {item.was})"
            for name in [item.name, *www]
        ]
        return Outcome(item, CREATED)

    def _quietly(self, operation: str, **params: Any) -> None:
        """An undo step: its failure is said, not raised over the error that caused it."""
        try:
            self.target.call(operation, **params)
        except SlipwayError as exc:
            self.say(f"could not undo with {operation}: {exc.message}")
