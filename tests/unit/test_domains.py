"""Custom domain rules and the status loop, with a fake checker and a fake clock."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest

from slipway.config import Settings
from slipway.domains.fake import FakeChecker
from slipway.domains.rules import (
    ACTIVE,
    BINDING,
    CREATE_FAILED,
    CREATING,
    DELETING,
    PENDING,
    Domains,
    advance,
    probe_name,
)
from slipway.errors import InvalidRequest, InvalidState, ResourceNotFound
from slipway.models import ServiceSpec
from slipway.observe.events import EventBus
from slipway.observe.logs import LogStore
from slipway.operations.journal import Journal
from slipway.operations.queue import OperationQueue
from slipway.records import Service
from slipway.routing.router import CustomHost
from slipway.services import Services
from slipway.store import Store
from slipway.vault import Vault


class Env:
    def __init__(self, tmp: Path) -> None:
        self.settings = Settings(data_dir=tmp, config_dir=tmp, domain_timeout=3600)
        self.store = Store(tmp / "db.sqlite", Vault(tmp / "vault.key"))
        self.services = Services(
            self.store,
            self.settings,
            lambda source: "",
            OperationQueue(),
            Journal(
                LogStore(tmp / "logs"), EventBus(self.store, region="us-east-1", account="0" * 12)
            ),
        )
        self.checker = FakeChecker()
        self.now = 1000.0
        self.notes: list[tuple[str, str]] = []
        self.refreshes = 0
        self.domains = Domains(
            self.store,
            self.settings,
            self.services,
            self.checker,
            note=lambda sid, msg: self.notes.append((sid, msg)),
            refresh=self._refresh,
            clock=lambda: self.now,
        )

    def _refresh(self) -> bool:
        self.refreshes += 1
        return True

    def service(self, name: str, status: str = "RUNNING", live: str | None = "d1") -> Service:
        spec = ServiceSpec.from_create(
            {
                "ServiceName": name,
                "SourceConfiguration": {
                    "ImageRepository": {"ImageIdentifier": "hello:1", "ImageRepositoryType": "ECR"}
                },
            }
        )
        row = Service(
            id=f"id-{name}",
            name=name,
            arn=f"arn:aws:apprunner:us-east-1:000000000000:service/{name}/id-{name}",
            hostname=name,
            status=status,
            spec=spec,
            live_deployment_id=live,
            created_at=time.time(),
            updated_at=time.time(),
        )
        self.store.insert_service(row)
        return row

    def domain(self, service: Service, name: str) -> dict:
        return self.store.get_custom_domain(service.id, name)

    def messages(self) -> list[str]:
        return [m for _, m in self.notes]


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(tmp_path)


def test_associate_starts_creating_with_records_for_domain_and_www(env):
    svc = env.service("web")
    service, row = env.domains.associate(svc.arn, "Example.COM.")
    assert service.id == svc.id
    assert row["domain_name"] == "example.com"
    assert row["status"] == CREATING
    assert row["validation"] == {
        "example.com": "PENDING_VALIDATION",
        "www.example.com": "PENDING_VALIDATION",
    }
    assert env.domains.dns_target(service) == "web.localhost"
    assert env.messages() == ["Custom domain example.com association started"]


def test_www_off_and_wildcards(env):
    svc = env.service("web")
    _, plain = env.domains.associate(svc.arn, "api.example.com", enable_www=False)
    assert list(plain["validation"]) == ["api.example.com"]
    _, wild = env.domains.associate(svc.arn, "*.example.org")
    assert wild["enable_www"] == 0
    assert list(wild["validation"]) == ["*.example.org"]
    with pytest.raises(InvalidRequest, match="wildcard"):
        env.domains.associate(svc.arn, "*.example.net", enable_www=True)


def test_status_walk_to_active_with_reasons_noted_once(env):
    svc = env.service("web")
    env.domains.associate(svc.arn, "example.com")
    env.domains.check_once()
    assert env.domain(svc, "example.com")["status"] == PENDING

    env.domains.check_once()
    env.domains.check_once()  # same reason again: noted once
    row = env.domain(svc, "example.com")
    assert row["status"] == PENDING
    assert "example.com is not here" in row["reason"]
    assert sum("is not here" in m for m in env.messages()) == 1
    assert env.domains.custom_hosts() == []  # not served before DNS points here

    env.checker.dns_ok = {"example.com", "www.example.com"}
    env.domains.check_once()
    row = env.domain(svc, "example.com")
    assert row["status"] == BINDING
    assert row["validation"] == {"example.com": "SUCCESS", "www.example.com": "SUCCESS"}
    assert env.refreshes == 1  # Caddy gets the names at once, to obtain certificates
    assert env.domains.custom_hosts() == [
        CustomHost("example.com", "web.localhost"),
        CustomHost("www.example.com", "web.localhost"),
    ]

    env.checker.tls_ok = {"example.com"}
    env.domains.check_once()
    assert env.domain(svc, "example.com")["status"] == BINDING
    assert "no certificate for www.example.com" in env.messages()[-1]

    env.checker.tls_ok.add("www.example.com")
    env.domains.check_once()
    row = env.domain(svc, "example.com")
    assert row["status"] == ACTIVE and row["reason"] == ""
    assert env.messages()[-1] == "Custom domain example.com is ACTIVE"
    notes = len(env.notes)
    env.domains.check_once()
    assert len(env.notes) == notes  # nothing changed, nothing said


def test_wildcard_is_checked_through_a_probe_host(env):
    svc = env.service("web")
    env.domains.associate(svc.arn, "*.example.com")
    probe = probe_name("*.example.com")
    assert probe == "slipway-check.example.com"
    env.checker.dns_ok = {probe}
    env.checker.tls_ok = {probe}
    for _ in range(3):
        env.domains.check_once()
    assert env.domain(svc, "*.example.com")["status"] == ACTIVE
    assert not env.domains.allows("anything.example.com")  # its DNS does not point here
    env.checker.dns_ok.add("anything.example.com")
    assert env.domains.allows("anything.example.com")
    env.checker.dns_ok.add("a.b.example.com")
    assert not env.domains.allows("a.b.example.com")
    assert not env.domains.allows("example.com")


def test_on_demand_certificates_fit_each_wildcards_hourly_budget(tmp_path: Path) -> None:
    env = Env(tmp_path)
    env.settings = Settings(data_dir=tmp_path, config_dir=tmp_path, ondemand_certs_per_hour=2)
    env.domains = Domains(env.store, env.settings, env.services, env.checker, clock=lambda: env.now)
    web, shop = env.service("web"), env.service("shop")
    env.domains.associate(web.arn, "*.example.com")
    env.domains.associate(shop.arn, "*.example.org")
    hosts = ["slipway-check.example.com", "a.example.com", "b.example.com", "c.example.org"]
    env.checker.dns_ok = {*hosts, "slipway-check.example.org"}
    env.checker.tls_ok = {"slipway-check.example.com", "slipway-check.example.org"}
    for _ in range(3):
        env.domains.check_once()
    assert env.domains.allows("a.example.com")
    assert env.domains.allows("b.example.com")
    assert env.domains.allows("a.example.com")  # approved again: no second certificate
    assert not env.domains.allows("slipway-check.example.com")  # *.example.com spent it
    assert env.domains.allows("c.example.org")  # another wildcard, its own budget
    env.now += 3600
    assert env.domains.allows("slipway-check.example.com")  # a new hour


def test_on_demand_budget_must_be_positive(tmp_path: Path) -> None:
    env = Env(tmp_path)
    settings = Settings(data_dir=tmp_path, config_dir=tmp_path, ondemand_certs_per_hour=0)
    with pytest.raises(InvalidRequest, match="ondemand_certs_per_hour"):
        Domains(env.store, settings, env.services, env.checker)


def test_timeout_fails_the_association(env):
    svc = env.service("web")
    env.domains.associate(svc.arn, "example.com", enable_www=True)
    env.checker.dns_ok = {"example.com"}
    env.domains.check_once()
    env.domains.check_once()  # www never resolves here
    env.now += 3600
    env.domains.check_once()
    row = env.domain(svc, "example.com")
    assert row["status"] == CREATE_FAILED
    assert row["validation"] == {"example.com": "SUCCESS", "www.example.com": "FAILED"}
    assert row["reason"].startswith("not validated within 1 h: www.example.com is not here")
    env.checker.dns_ok.add("www.example.com")
    env.domains.check_once()
    assert env.domain(svc, "example.com")["status"] == CREATE_FAILED  # settled


def test_advance_is_pure_given_the_checker():
    row = {
        "domain_name": "example.com",
        "enable_www": 0,
        "status": PENDING,
        "validation": {"example.com": "PENDING_VALIDATION"},
        "reason": "",
        "created_at": 0.0,
    }
    checker = FakeChecker()
    assert advance(row, checker, 10.0, 100.0).status == PENDING
    checker.dns_ok.add("example.com")
    assert advance(row, checker, 10.0, 100.0).status == BINDING
    assert advance({**row, "status": BINDING}, checker, 10.0, 100.0).status == BINDING
    assert advance({**row, "status": BINDING}, checker, 100.0, 100.0).status == CREATE_FAILED


def test_sixth_domain_is_refused(env):
    svc = env.service("web")
    for i in range(5):
        env.domains.associate(svc.arn, f"d{i}.example.com")
    with pytest.raises(InvalidRequest, match="5 custom domains"):
        env.domains.associate(svc.arn, "d5.example.com")
    assert len(env.store.list_custom_domains(svc.id)) == 5


def test_a_domain_held_elsewhere_is_refused(env):
    a, b = env.service("a"), env.service("b")
    env.domains.associate(a.arn, "example.com")  # and www.example.com
    env.domains.associate(a.arn, "*.example.org")
    with pytest.raises(InvalidRequest, match="already associated with service a"):
        env.domains.associate(a.arn, "example.com")
    with pytest.raises(InvalidRequest, match="service a"):
        env.domains.associate(b.arn, "EXAMPLE.com", enable_www=False)
    with pytest.raises(InvalidRequest, match="www.example.com is already associated"):
        env.domains.associate(b.arn, "www.example.com")
    with pytest.raises(InvalidRequest, match=r"\*.example.org"):
        env.domains.associate(b.arn, "*.example.org")
    # the other way round: b holds www.example.net, a asks for example.net with www
    env.domains.associate(b.arn, "www.example.net", enable_www=False)
    with pytest.raises(InvalidRequest, match="www.example.net"):
        env.domains.associate(a.arn, "example.net")
    # a more specific name under another service's wildcard is fine: it wins
    env.domains.associate(b.arn, "login.example.org")
    assert {d["domain_name"] for d in env.store.list_custom_domains(b.id)} == {
        "www.example.net",
        "login.example.org",
    }


@pytest.mark.parametrize(
    ("status", "live"),
    [("PAUSED", "d1"), ("DELETED", "d1"), ("CREATE_FAILED", None), ("OPERATION_IN_PROGRESS", None)],
)
def test_service_must_be_running(env, status, live):
    svc = env.service("web", status=status, live=live)
    with pytest.raises(InvalidState):
        env.domains.associate(svc.arn, "example.com")
    assert env.store.list_custom_domains() == []


def test_unknown_service_and_bad_names(env):
    with pytest.raises(InvalidRequest, match="not found"):
        env.domains.associate("arn:aws:apprunner:us-east-1:000000000000:service/x/y", "a.com")
    svc = env.service("web")
    for bad in ("web.localhost", "localhost", "*.localhost", "a.*.example.com", "*example.com"):
        with pytest.raises(InvalidRequest):
            env.domains.associate(svc.arn, bad)
    assert env.store.list_custom_domains() == []


def test_disassociate_goes_deleting_then_gone(env):
    svc = env.service("web")
    with pytest.raises(ResourceNotFound):
        env.domains.disassociate(svc.arn, "example.com")
    env.domains.associate(svc.arn, "example.com")
    service, row = env.domains.disassociate(svc.arn, "example.com.")
    assert row["status"] == DELETING
    with pytest.raises(InvalidState, match="already being disassociated"):
        env.domains.disassociate(svc.arn, "example.com")
    refreshes = env.refreshes
    env.domains.check_once()
    assert env.refreshes == refreshes + 1  # out of Caddy before it is forgotten
    assert env.store.list_custom_domains() == []
    assert env.messages()[-1] == "Custom domain example.com disassociated"
    env.domains.associate(svc.arn, "example.com")  # free again


def test_disassociation_wins_over_a_pass_in_flight(env):
    svc = env.service("web")
    env.domains.associate(svc.arn, "example.com")
    row = env.domain(svc, "example.com")
    env.domains.disassociate(svc.arn, "example.com")
    env.domains._advance(row)  # a pass that read the row before the disassociation
    assert env.domain(svc, "example.com")["status"] == DELETING


def test_paused_or_deleted_services(env):
    svc = env.service("web")
    env.domains.associate(svc.arn, "example.com", enable_www=False)
    env.checker.dns_ok = env.checker.tls_ok = {"example.com"}
    for _ in range(3):
        env.domains.check_once()
    env.store.update_service(svc.id, status="PAUSED")
    # still served: Caddy answers 503 "paused" on it, as on the default host
    assert env.domains.custom_hosts() == [CustomHost("example.com", "web.localhost")]
    env.store.update_service(svc.id, status="DELETED")
    assert env.domains.custom_hosts() == []
    with pytest.raises(ResourceNotFound):
        env.domains.describe(svc.arn, None, None)
    env.domains.check_once()
    assert env.store.list_custom_domains() == []


def test_a_deleted_services_domain_is_free_at_once(env):
    a, b = env.service("a"), env.service("b")
    env.domains.associate(a.arn, "example.com")
    env.store.update_service(a.id, status="DELETED")
    env.domains.associate(b.arn, "example.com")  # before the loop forgot a's
    env.domains.check_once()
    assert [(d["service_id"], d["domain_name"]) for d in env.store.list_custom_domains()] == [
        (b.id, "example.com")
    ]


def test_describe_pages(env):
    svc = env.service("web")
    for i in range(3):
        env.domains.associate(svc.arn, f"d{i}.example.com")
    _, first = env.domains.describe(svc.arn, 2, None)
    assert [r["domain_name"] for r in first.items] == ["d0.example.com", "d1.example.com"]
    _, second = env.domains.describe(svc.arn, 2, first.next_token)
    assert [r["domain_name"] for r in second.items] == ["d2.example.com"]
    assert second.next_token is None


def test_the_agents_own_public_names_are_refused(env):
    env.domains.settings = dataclasses.replace(
        env.settings, public_hooks_domain="hooks.example.com", api_domain="api.example.com"
    )
    svc = env.service("web")
    with pytest.raises(InvalidRequest, match="public_hooks_domain"):
        env.domains.associate(svc.arn, "hooks.example.com")
    with pytest.raises(InvalidRequest, match="api_domain"):
        env.domains.associate(svc.arn, "API.example.com.", enable_www=False)
    _, row = env.domains.associate(svc.arn, "shop.example.com")
    assert row["domain_name"] == "shop.example.com"
    # the www name it would add counts too
    env.domains.settings = dataclasses.replace(env.settings, api_domain="www.example.net")
    with pytest.raises(InvalidRequest, match="api_domain"):
        env.domains.associate(svc.arn, "example.net")
    env.domains.associate(svc.arn, "example.net", enable_www=False)
