"""Custom domains: the rules of AssociateCustomDomain, DescribeCustomDomains and
DisassociateCustomDomain, and the loop that moves each association through App Runner's
statuses by checking, for real, that its DNS points here and that Caddy serves a trusted
certificate for it.

    CREATING ─> PENDING_CERTIFICATE_DNS_VALIDATION ─> BINDING_CERTIFICATE ─> ACTIVE
        └──────────────── (not ACTIVE within domain_timeout) ──────────────> CREATE_FAILED
    any ─(disassociate)─> DELETING ─(out of Caddy's config)─> gone

Caddy serves BINDING_CERTIFICATE and ACTIVE domains (``custom_hosts``), so it obtains the
certificate that the BINDING check then verifies. Why a domain is still pending goes to
the service's ``events`` stream, once per change of reason: App Runner's shapes have no
field for it. What the next status is, is the pure function ``advance``.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..config import Settings
from ..errors import InvalidRequest, InvalidState, ResourceNotFound, SlipwayError
from ..paging import Page
from ..records import Service
from ..routing.router import CustomHost, Router, TlsSettings
from ..services import Services
from ..store import Store
from .check import Checker, DomainCheck
from .names import covers, is_wildcard, parse_domain, www_name
from .ondemand import OnDemandBudget, OnDemandLimits

log = logging.getLogger("slipway.domains")

MAX_DOMAINS = 5  # per service, as App Runner allows
CREATING = "CREATING"
PENDING = "PENDING_CERTIFICATE_DNS_VALIDATION"
BINDING = "BINDING_CERTIFICATE"
ACTIVE = "ACTIVE"
CREATE_FAILED = "CREATE_FAILED"
DELETING = "DELETING"
SERVED = (BINDING, ACTIVE)  # what Caddy serves over HTTPS
SETTLED = (ACTIVE, CREATE_FAILED)  # nothing more to check
# Record statuses (CertificateValidationRecordStatus).
RECORD_PENDING, RECORD_OK, RECORD_FAILED = "PENDING_VALIDATION", "SUCCESS", "FAILED"
# A wildcard is checked through one host under it: its DNS, and the certificate Caddy
# issues for that host on demand.
PROBE_LABEL = "slipway-check"
ASK_PATH = "/slipway/v1/domains/ask"  # served by api/app.py


def names_of(row: dict[str, Any]) -> list[str]:
    """The names one association serves: the domain, and www.<domain> when enabled."""
    name = row["domain_name"]
    return [name, www_name(name)] if row["enable_www"] else [name]


def probe_name(name: str) -> str:
    """The host whose DNS and certificate stand for ``name``."""
    return f"{PROBE_LABEL}.{name[2:]}" if is_wildcard(name) else name


@dataclass(frozen=True)
class Step:
    """The outcome of one look at a domain: its status, record statuses and reason."""

    status: str
    validation: dict[str, str]
    reason: str = ""


def advance(row: dict[str, Any], checker: Checker, now: float, timeout: float) -> Step:
    """What a domain in CREATING, PENDING or BINDING becomes after one look (pure given
    the checker): one status forward at most, or CREATE_FAILED once it timed out."""
    validation = dict(row["validation"] or {})
    status = row["status"]
    step = Step(status, validation, row["reason"] or "")
    if status == CREATING:
        step = Step(PENDING, validation, "")
    elif status == PENDING:
        reasons = []
        for name in names_of(row):
            check = checker.dns(probe_name(name))
            validation[name] = RECORD_OK if check.ok else RECORD_PENDING
            if not check.ok:
                reasons.append(check.reason)
        step = (
            Step(BINDING, validation)
            if not reasons
            else Step(PENDING, validation, "; ".join(reasons))
        )
    elif status == BINDING:
        reasons = [
            check.reason
            for check in (checker.tls(probe_name(n)) for n in names_of(row))
            if not check.ok
        ]
        step = (
            Step(ACTIVE, validation)
            if not reasons
            else Step(BINDING, validation, "; ".join(reasons))
        )
    if step.status != ACTIVE and now - row["created_at"] >= timeout:
        failed = {n: (s if s == RECORD_OK else RECORD_FAILED) for n, s in validation.items()}
        hours = timeout / 3600
        why = f"not validated within {hours:g} h" + (f": {step.reason}" if step.reason else "")
        return Step(CREATE_FAILED, failed, why)
    return step


class Domains:
    """Custom domain associations of services, kept in the store and advanced by a job."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        services: Services,
        checker: Checker,
        *,
        note: Callable[[str, str], None] = lambda service_id, message: None,
        refresh: Callable[[], object] = lambda: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # How many of each wildcard's hosts may get a certificate on demand per hour.
        self.budget = OnDemandBudget(OnDemandLimits(settings.ondemand_certs_per_hour))
        self.store = store
        self.settings = settings
        self.services = services
        self.checker = checker
        self.note = note  # a line in the service's events stream
        self.refresh = refresh  # push the served domains to Caddy now
        self.clock = clock
        self._lock = threading.Lock()  # one association decided at a time
        self.wakeup = threading.Event()

    # -- API rules -------------------------------------------------------------

    def dns_target(self, service: Service) -> str:
        """Where the user points their domain: the service's default host."""
        return self.settings.service_host(service.hostname)

    def _service(self, arn: str) -> Service:
        service = self.services.service(arn)
        if service.status == "DELETED":
            raise ResourceNotFound(f"Service {arn} not found")
        return service

    def associate(
        self, service_arn: str, domain_name: str, enable_www: bool | None = None
    ) -> tuple[Service, dict[str, Any]]:
        """Check everything, then record the association as CREATING; (service, domain)."""
        try:
            service = self.services.service(service_arn)
        except ResourceNotFound as exc:  # the model has no ResourceNotFound here
            raise InvalidRequest(exc.message) from exc
        name = parse_domain(domain_name, self.settings.base_domain)
        wildcard = is_wildcard(name)
        if wildcard and enable_www:
            raise InvalidRequest(f"EnableWWWSubdomain can't be used with the wildcard {name}")
        www = (not wildcard) if enable_www is None else enable_www
        if www and len(www_name(name)) > 253:
            raise InvalidRequest(f"www.{name} would be longer than 253 characters")
        for setting in ("public_hooks_domain", "api_domain"):
            own = getattr(self.settings, setting).lower()
            if own and own in (name, www_name(name) if www else name):
                raise InvalidRequest(
                    f"DomainName {domain_name!r}: {own} is this host's {setting}, served"
                    " by the agent itself"
                )
        self._check_state(service)
        row = {
            "id": uuid.uuid4().hex,
            "service_id": service.id,
            "domain_name": name,
            "enable_www": int(www),
            "status": CREATING,
            "reason": "",
        }
        row["validation"] = {n: RECORD_PENDING for n in names_of(row)}
        with self._lock:
            self._check_free(service, row)
            now = self.clock()
            row.update(created_at=now, updated_at=now)
            self.store.insert_custom_domain(row)
        self.note(service.id, f"Custom domain {name} association started")
        self.wake()
        return service, row

    def _check_state(self, service: Service) -> None:
        status = service.status
        if status in ("DELETED", "DELETE_FAILED", "PAUSED", "CREATE_FAILED"):
            raise InvalidState(
                f"Service {service.name} is {status}: custom domains can be associated "
                f"only with a running service"
            )
        if not service.live_deployment_id:
            raise InvalidState(
                f"Service {service.name} has no running revision yet: associate custom "
                f"domains once it is RUNNING"
            )

    def _check_free(self, service: Service, row: dict[str, Any]) -> None:
        mine = self.store.list_custom_domains(service.id)
        if any(d["domain_name"] == row["domain_name"] for d in mine):
            raise InvalidRequest(
                f"Domain {row['domain_name']} is already associated with service {service.name}"
            )
        if len([d for d in mine if d["status"] != DELETING]) >= MAX_DOMAINS:
            raise InvalidRequest(
                f"Service {service.name} already has {MAX_DOMAINS} custom domains, "
                f"the most App Runner allows"
            )
        wanted = set(names_of(row))
        for other in self.store.list_custom_domains():
            taken = wanted & set(names_of(other))
            if not taken:
                continue
            owner = self.store.get_service(other["service_id"])
            if owner is None or owner.status == "DELETED":
                continue  # the loop forgets it on its next pass
            whose = "this service" if owner.id == service.id else f"service {owner.name}"
            raise InvalidRequest(
                f"Domain {', '.join(sorted(taken))} is already associated with {whose} "
                f"(through {other['domain_name']}, {other['status']})"
            )

    def describe(
        self, service_arn: str, max_results: int | None, token: str | None
    ) -> tuple[Service, Page]:
        service = self._service(service_arn)
        domains = self.store.list_custom_domains(service.id)
        listing = f"DescribeCustomDomains {service.id}"
        return service, self.services.pager.page(domains, max_results, token, listing=listing)

    def disassociate(self, service_arn: str, domain_name: str) -> tuple[Service, dict[str, Any]]:
        """Mark the association DELETING; the loop takes it out of Caddy, then forgets it."""
        service = self._service(service_arn)
        name = domain_name[:-1] if domain_name.endswith(".") else domain_name
        with self._lock:
            row = self.store.get_custom_domain(service.id, name.lower())
            if row is None:
                raise ResourceNotFound(
                    f"Domain {domain_name} is not associated with service {service.name}"
                )
            if row["status"] == DELETING:
                raise InvalidState(f"Domain {row['domain_name']} is already being disassociated")
            self.store.update_custom_domain(row["id"], status=DELETING, updated_at=self.clock())
            row = {**row, "status": DELETING}
        self.note(service.id, f"Custom domain {row['domain_name']} disassociation started")
        self.wake()
        return service, row

    # -- what Caddy serves -----------------------------------------------------

    def _served(self) -> list[tuple[dict[str, Any], Service]]:
        services = {s.id: s for s in self.store.list_services()}
        return [
            (row, services[row["service_id"]])
            for row in self.store.list_custom_domains()
            if row["status"] in SERVED and row["service_id"] in services
        ]

    def custom_hosts(self) -> list[CustomHost]:
        """The names Caddy serves over HTTPS now, each with its service's default host."""
        return [
            CustomHost(name, self.dns_target(service))
            for row, service in self._served()
            for name in names_of(row)
        ]

    def allows(self, host: str) -> bool:
        """Caddy's on-demand ``ask``: may it get a certificate for ``host``? Only under a
        served wildcard, resolving to this host, within the wildcard's hourly budget
        (``ondemand.py``); an exact name is managed ahead of time, never on demand."""
        host = host.lower().rstrip(".")
        names = [name for row, _ in self._served() for name in names_of(row)]
        if host in names:
            return True
        wildcard = next((n for n in names if is_wildcard(n) and covers(n, host)), None)
        if wildcard is None:
            return False
        check = self.checker.dns(host)
        why = check.reason if not check.ok else self.budget.take(wildcard, host, self.clock())
        if why:
            log.warning("no certificate on demand for %s: %s", host, why)
        return not why

    # -- the loop --------------------------------------------------------------

    def check_once(self) -> None:
        """One pass: forget associations that are gone, advance those in progress."""
        services = {s.id: s for s in self.store.list_services(include_deleted=True)}
        leaving = []
        for row in self.store.list_custom_domains():
            service = services.get(row["service_id"])
            if service is None or service.status == "DELETED":
                self.store.delete_custom_domain(row["id"])
            elif row["status"] == DELETING:
                leaving.append(row)
            elif row["status"] not in SETTLED:
                self._advance(row)
        if leaving:
            self.refresh()  # raises when Caddy is unreachable: they stay DELETING
            for row in leaving:
                self.store.delete_custom_domain(row["id"])
                self.note(row["service_id"], f"Custom domain {row['domain_name']} disassociated")

    def _advance(self, row: dict[str, Any]) -> None:
        step = advance(row, self.checker, self.clock(), self.settings.domain_timeout)
        old = Step(row["status"], dict(row["validation"] or {}), row["reason"] or "")
        if step == old:
            return
        changed = self.store.update_custom_domain(
            row["id"],
            expect_status=row["status"],
            status=step.status,
            validation=step.validation,
            reason=step.reason,
            updated_at=self.clock(),
        )
        if not changed:  # disassociated meanwhile
            return
        name = row["domain_name"]
        if step.reason and step.reason != old.reason:
            self.note(row["service_id"], f"Custom domain {name}: {step.reason}")
        if step.status != old.status:
            self.note(row["service_id"], f"Custom domain {name} is {step.status}")
            if step.status in SERVED or old.status in SERVED:
                self._refresh_quietly()

    def _refresh_quietly(self) -> None:
        try:
            self.refresh()
        except SlipwayError as exc:  # the reconcile loop pushes it again shortly
            log.warning("could not push custom domains to Caddy now: %s", exc.message)

    def wake(self) -> None:
        """Look now, not at the next interval (the agent runs ``check_once`` as a job
        that ``wakeup`` also starts)."""
        self.wakeup.set()


# -- wiring ---------------------------------------------------------------------


def agent_address(settings: Settings) -> str:
    """``host:port`` where Caddy reaches the agent (loopback when it listens everywhere)."""
    host = settings.listen_host
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    return f"{host}:{settings.listen_port}"


def tls_settings(settings: Settings) -> TlsSettings:
    """The router's HTTPS side from the settings; Caddy asks the agent itself on demand."""
    return TlsSettings(
        https_port=settings.https_port,
        issuer=settings.tls_issuer,
        acme_ca=settings.acme_ca,
        acme_email=settings.acme_email,
        acme_ca_root=settings.acme_ca_root,
        ask_url=f"http://{agent_address(settings)}{ASK_PATH}",
        acme_challenges=settings.acme_challenges,
        renew_interval=settings.tls_renew_interval,
    )


def domain_checker(settings: Settings, router: Router) -> DomainCheck:
    """Real checks: the configured resolver, and a handshake with the Caddy that the
    admin URL names, trusting its internal CA or the ACME CA's root."""

    def ca_root() -> str | None:
        if settings.tls_issuer == "internal":
            return router.internal_ca_root()
        if settings.acme_ca_root:
            return Path(settings.acme_ca_root).read_text()
        return None  # the system's trust store, as browsers would

    # Caddy's host: the admin URL's, or loopback when its admin API is a socket.
    caddy_host = None if router.admin.socket else urlsplit(router.admin_url).hostname
    return DomainCheck(
        resolver=settings.dns_resolver,
        host_addresses=settings.host_addresses,
        tls_host=caddy_host or "127.0.0.1",
        https_port=settings.https_port,
        ca_root=ca_root,
    )
