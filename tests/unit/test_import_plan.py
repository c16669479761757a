"""The import's plan rules on plain readings (no AWS, no agent), and an item undone when
its second step fails."""

from __future__ import annotations

from typing import Any

import pytest

from slipway.errors import InvalidRequest, SlipwayError
from slipway.importer.account import (
    Account,
    Connection,
    Domain,
    Revision,
    ServiceView,
    SourceAccount,
)
from slipway.importer.apply import FAILED, Importer
from slipway.importer.plan import (
    AUTO_SCALING,
    CREATE,
    NOTHING,
    SKIP,
    Options,
    create_params,
    differences,
    make_plan,
    pushed_identifier,
)

ACCOUNT = "arn:aws:apprunner:eu-west-1:123456789012"
HERE = "arn:aws:apprunner:us-east-1:000000000000"


def asc(where: str, name: str, revision: int, concurrency: int) -> Revision:
    return Revision(
        name,
        revision,
        f"{where}:autoscalingconfiguration/{name}/{revision}/x{revision}",
        {"MaxConcurrency": concurrency, "MinSize": 1, "MaxSize": 3},
    )


def service(
    where: str, name: str, asc_arn: str, *, domains: tuple = (), **image_conf: Any
) -> ServiceView:
    description = {
        "ServiceName": name,
        "SourceConfiguration": {
            "ImageRepository": {
                "ImageIdentifier": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/web:v1",
                "ImageRepositoryType": "ECR",
                "ImageConfiguration": {"Port": "8080", **image_conf},
            },
            "AutoDeploymentsEnabled": False,
        },
        "InstanceConfiguration": {"Cpu": "1 vCPU", "Memory": "2 GB"},
        "HealthCheckConfiguration": {"Protocol": "HTTP", "Path": "/health"},
        "AutoScalingConfigurationSummary": {
            "AutoScalingConfigurationArn": asc_arn,
            "AutoScalingConfigurationName": asc_arn.split("/")[1],
        },
        "NetworkConfiguration": {"EgressConfiguration": {"EgressType": "DEFAULT"}},
    }
    return ServiceView(
        name, f"{where}:service/{name}/1", "RUNNING", description, {"team": "web"},
        [Domain(d, True, "ACTIVE") for d in domains], f"{name}.awsapprunner.com",
    )  # fmt: skip


def by_name(plan) -> dict[tuple[str, str], Any]:
    return {(i.kind, i.name): i for i in plan.items}


def test_revisions_here_that_are_the_accounts_first_ones_are_completed():
    source = Account(auto_scaling=[asc(ACCOUNT, "b", 1, 10), asc(ACCOUNT, "b", 3, 20)])
    target = Account(auto_scaling=[asc(HERE, "b", 1, 10)])
    plan = make_plan(source, target)
    item = by_name(plan)[AUTO_SCALING, "b"]
    assert item.action == CREATE
    assert [r["MaxConcurrency"] for r in item.requests] == [20]
    assert item.source_arns == [source.auto_scaling[1].arn]
    assert plan.arns == {source.auto_scaling[0].arn: target.auto_scaling[0].arn}


def test_revisions_that_differ_skip_the_name_and_the_services_using_it():
    source = Account(
        auto_scaling=[asc(ACCOUNT, "b", 1, 10)],
        services=[service(ACCOUNT, "web", asc(ACCOUNT, "b", 1, 10).arn, domains=("a.example",))],
    )
    target = Account(auto_scaling=[asc(HERE, "b", 1, 99)])
    items = by_name(make_plan(source, target))
    assert items[AUTO_SCALING, "b"].action == SKIP
    assert "revision 1 here is MaxConcurrency 99" in items[AUTO_SCALING, "b"].detail
    assert items["service", "web"].action == SKIP
    assert "was not imported" in items["service", "web"].detail
    assert items["custom domain", "a.example"].action == SKIP


def test_the_same_service_here_is_nothing_to_do_and_another_is_skipped_with_the_difference():
    source_asc, here_asc = asc(ACCOUNT, "b", 1, 10), asc(HERE, "b", 1, 10)
    source = Account(auto_scaling=[source_asc], services=[service(ACCOUNT, "web", source_asc.arn)])
    same = service(HERE, "web", here_asc.arn)
    plan = make_plan(source, Account(auto_scaling=[here_asc], services=[same]))
    assert by_name(plan)["service", "web"].action == NOTHING
    assert plan.pending() == []

    other = service(HERE, "web", here_asc.arn, RuntimeEnvironmentVariables={"A": "1"})
    item = by_name(make_plan(source, Account(auto_scaling=[here_asc], services=[other])))[
        "service", "web"
    ]
    assert item.action == SKIP
    assert "ImageConfiguration.RuntimeEnvironmentVariables.A" in item.detail


def test_what_cannot_come_over_is_named_on_the_service():
    view = service(ACCOUNT, "web", asc(ACCOUNT, "b", 1, 10).arn)
    view.description["InstanceConfiguration"]["InstanceRoleArn"] = "arn:aws:iam::1:role/app"
    view.description["NetworkConfiguration"] = {
        "EgressConfiguration": {"EgressType": "VPC", "VpcConnectorArn": "arn:vpc"},
        "IngressConfiguration": {"IsPubliclyAccessible": False},
    }
    params, lost = create_params(view.description, view.tags)
    assert params["InstanceConfiguration"] == {"Cpu": "1024", "Memory": "2048"}
    assert params["NetworkConfiguration"] == {
        "IngressConfiguration": {"IsPubliclyAccessible": False}
    }
    assert [note.split(" ")[0] for note in lost] == ["instance", "VPC"]
    assert "InstanceRoleArn" not in str(params)


def test_differences_name_nested_members():
    assert differences({"A": {"B": 1, "C": 2}}, {"A": {"B": 1, "C": 3, "D": 4}}) == [
        "A.C",
        "A.D",
    ]


def test_connections_must_be_authorized_here_before_their_services_come():
    conn = Connection("gh", f"{ACCOUNT}:connection/gh/1", "GITHUB", "AVAILABLE")
    view = service(ACCOUNT, "web", asc(ACCOUNT, "DefaultConfiguration", 1, 100).arn)
    view.description["SourceConfiguration"]["AuthenticationConfiguration"] = {
        "ConnectionArn": conn.arn
    }
    source = Account(services=[view], connections=[conn])
    items = by_name(make_plan(source, Account()))
    assert items["connection", "gh"].action == CREATE
    assert "slipway connections authorize gh" in items["connection", "gh"].todo[0]
    assert items["service", "web"].action == SKIP
    assert "connection gh is not authorized here" in items["service", "web"].detail


def test_missing_secrets_are_planned_and_a_bad_reference_skips_the_service():
    ref = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf"
    source = Account(services=[service(ACCOUNT, "web", "x/b/1", RuntimeEnvironmentSecrets={
        "DB": ref
    })])  # fmt: skip
    item = by_name(make_plan(source, Account(secrets={"db": ["other"]})))["service", "web"]
    assert [(n.name, n.present, n.granted) for n in item.secrets] == [("db", True, False)]
    bad = Account(services=[service(ACCOUNT, "web", "x/b/1", RuntimeEnvironmentSecrets={
        "DB": "arn:aws:kms:nope"
    })])  # fmt: skip
    assert by_name(make_plan(bad, Account()))["service", "web"].action == SKIP


def test_push_images_moves_ecr_images_under_the_registry_and_only_names_services():
    view = service(ACCOUNT, "web", "x/b/1")
    plan = make_plan(Account(services=[view]), Account(), Options(push_registry="reg:5000/in"))
    item = by_name(plan)["service", "web"]
    assert item.image_copy == (
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/web:v1",
        "reg:5000/in/web:v1",
    )
    assert pushed_identifier("reg:5000/in/web:v1", "reg:5000/in") == "reg:5000/in/web:v1"
    with pytest.raises(InvalidRequest, match="--only nope"):
        make_plan(Account(services=[view]), Account(), Options(only=frozenset({"nope"})))


class FakeTarget:
    """This host's API, refusing the second configuration revision it is asked for."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []

    def call(self, operation: str, **params: Any) -> dict[str, Any]:
        self.calls.append((operation, params))
        creates = [c for c in self.calls if c[0] == "CreateAutoScalingConfiguration"]
        if operation == "CreateAutoScalingConfiguration" and len(creates) == 2:
            raise SlipwayError("quota reached (auto_scaling_revision_quota)")
        arn = f"{HERE}:autoscalingconfiguration/b/{len(creates)}/n"
        return {"AutoScalingConfiguration": {"AutoScalingConfigurationArn": arn}}


def test_a_name_whose_second_revision_fails_is_undone():
    source = Account(auto_scaling=[asc(ACCOUNT, "b", 1, 10), asc(ACCOUNT, "b", 2, 20)])
    target = FakeTarget()
    outcomes = Importer(None, target).apply(make_plan(source, Account()))  # type: ignore[arg-type]
    assert [(o.result, o.reason) for o in outcomes] == [
        (FAILED, "quota reached (auto_scaling_revision_quota)")
    ]
    assert target.calls[-1] == (
        "DeleteAutoScalingConfiguration",
        {"AutoScalingConfigurationArn": f"{HERE}:autoscalingconfiguration/b/1/n"},
    )


def test_the_account_is_refused_before_any_call_for_a_bad_profile_or_region(monkeypatch, tmp_path):
    empty = tmp_path / "aws"
    empty.write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    with pytest.raises(InvalidRequest, match="--profile nobody: no such AWS profile"):
        SourceAccount("nobody", "us-east-1", None)
    with pytest.raises(InvalidRequest, match="--region mars-east-1: App Runner is not offered"):
        SourceAccount(None, "mars-east-1", None)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    with pytest.raises(InvalidRequest, match="no AWS region"):
        SourceAccount(None, None, None)
    assert SourceAccount(None, "mars-east-1", "http://127.0.0.1:1").region == "mars-east-1"


class DomainTarget:
    """This host's API for a service that is here already."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []

    def service_arn(self, name: str) -> str:
        return f"{HERE}:service/{name}/1"

    def call(self, operation: str, **params: Any) -> dict[str, Any]:
        self.calls.append((operation, params))
        return {"DNSTarget": "web.apps.example"}


def test_a_new_domain_goes_on_a_service_that_is_here_already_and_says_the_dns_change():
    source_asc, here_asc = asc(ACCOUNT, "b", 1, 10), asc(HERE, "b", 1, 10)
    source = Account(
        auto_scaling=[source_asc],
        services=[service(ACCOUNT, "web", source_asc.arn, domains=("shop.example",))],
    )
    target = Account(auto_scaling=[here_asc], services=[service(HERE, "web", here_asc.arn)])
    fake = DomainTarget()
    outcomes = Importer(None, fake).apply(make_plan(source, target))  # type: ignore[arg-type]
    domain = next(o for o in outcomes if o.item.kind == "custom domain")
    assert (domain.result, domain.reason) == ("created", "")
    assert fake.calls == [
        (
            "AssociateCustomDomain",
            {
                "ServiceArn": f"{HERE}:service/web/1",
                "DomainName": "shop.example",
                "EnableWWWSubdomain": True,
            },
        )
    ]
    assert domain.item.todo == [
        "DNS: shop.example CNAME web.apps.example (was web.awsapprunner.com)",
        "DNS: www.shop.example CNAME web.apps.example (was web.awsapprunner.com)",
    ]


class SecretSource:
    """The account: one secret readable, the other not."""

    def secret_value(self, reference: str) -> str:
        if reference.endswith("token"):
            raise SlipwayError(f"cannot read {reference} from the account: AccessDenied")
        return "s3cret"


class ServiceTarget(DomainTarget):
    def signed(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((f"{method} {path}", body))
        return {}


def test_a_service_whose_secret_cannot_be_read_is_not_created_and_its_put_secrets_go():
    view = service(
        ACCOUNT, "web", asc(ACCOUNT, "DefaultConfiguration", 1, 100).arn,
        RuntimeEnvironmentSecrets={"A_DB": "db", "B_TOKEN": "token"},
    )  # fmt: skip
    source = Account(auto_scaling=[asc(ACCOUNT, "DefaultConfiguration", 1, 100)], services=[view])
    target = Account(auto_scaling=[asc(HERE, "DefaultConfiguration", 1, 100)])
    fake = ServiceTarget()
    outcomes = Importer(SecretSource(), fake).apply(make_plan(source, target))  # type: ignore[arg-type]
    web = next(o for o in outcomes if o.item.kind == "service")
    assert web.result == FAILED
    assert "secret token (B_TOKEN): cannot read token from the account: AccessDenied" in web.reason
    assert "slipway secrets put token --service web" in web.reason
    assert fake.calls == [
        ("PUT /slipway/v1/secrets", {"Name": "db", "SecretString": "s3cret", "Services": ["web"]}),
        ("DELETE /slipway/v1/secrets", {"Name": "db"}),
    ]
