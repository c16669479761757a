"""VPC connectors and VPC ingress connections without Docker or Caddy: the calls'
rules and answers, a service's NetworkConfiguration, and the settings' checks."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from slipway.api.validate import validate_input
from slipway.api.vpc import VPC_HANDLERS
from slipway.backends.fake import FakeBackend
from slipway.config import Settings
from slipway.errors import InvalidRequest, InvalidState, QuotaExceeded, ResourceNotFound
from slipway.observe.events import EventBus
from slipway.observe.logs import LogStore
from slipway.operations.journal import Journal
from slipway.operations.queue import OperationQueue
from slipway.operations.rollout import instance_spec
from slipway.releases import Release
from slipway.services import Services
from slipway.sources.check import SourceCheck
from slipway.sources.fake import FakeRegistry
from slipway.store import Store
from slipway.vault import Vault
from slipway.vpc.limits import VpcLimits

IMAGE = "127.0.0.1:5000/hello:v1"
SOURCE = {"ImageRepository": {"ImageIdentifier": IMAGE, "ImageRepositoryType": "ECR"}}


class Env:
    def __init__(self, tmp: Path, **settings) -> None:
        self.settings = Settings(data_dir=tmp, config_dir=tmp, **settings)
        self.store = Store(tmp / "db.sqlite", Vault(tmp / "key"))
        self.backend = FakeBackend(networks={"db-net", "cache-net"})
        self.services = Services(
            self.store,
            self.settings,
            SourceCheck(FakeRegistry({IMAGE: "sha256:" + "1" * 64})),
            OperationQueue(),
            Journal(LogStore(tmp / "logs"), EventBus(self.store, region="r", account="0" * 12)),
            network_check=self.backend.network_problems,
        )
        self.services.ensure_default_auto_scaling()

    def call(self, operation: str, **params) -> dict:
        """As the API edge does: validate against botocore's model, then the handler."""
        validate_input(operation, params)
        return VPC_HANDLERS[operation](SimpleNamespace(services=self.services), params)

    def connector(self, name: str = "db-access", *subnets: str) -> dict:
        answer = self.call(
            "CreateVpcConnector", VpcConnectorName=name, Subnets=list(subnets or ["db-net"])
        )
        return answer["VpcConnector"]

    def service(self, name: str = "web", **network):
        params = {"ServiceName": name, "SourceConfiguration": SOURCE}
        if network:
            params["NetworkConfiguration"] = network
        return self.services.create_service(params)[0]


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(tmp_path, private_listen="127.0.0.1:8791", vpc_connector_quota=2)


def test_a_connector_names_existing_docker_networks(env: Env) -> None:
    made = env.connector("db-access", "db-net", "cache-net")
    assert made["VpcConnectorArn"].startswith(
        "arn:aws:apprunner:us-east-1:000000000000:vpcconnector/db-access/1/"
    )
    assert (made["VpcConnectorRevision"], made["Status"]) == (1, "ACTIVE")
    assert made["Subnets"] == ["db-net", "cache-net"] and made["SecurityGroups"] == []
    described = env.call("DescribeVpcConnector", VpcConnectorArn=made["VpcConnectorArn"])
    assert described["VpcConnector"] == made
    assert env.call("ListVpcConnectors")["VpcConnectors"] == [made]


def test_bad_connectors_are_refused_naming_the_problem_and_nothing_is_stored(env: Env) -> None:
    for subnets, groups, match in (
        (["nope-net"], [], "Docker network 'nope-net' does not exist"),
        ([], [], "Subnets: name at least one"),
        (["db-net", "db-net"], [], "names one more than once"),
        (["bad name"], [], r"Subnets\[0\]: 'bad name' is not a Docker network name"),
        (["db-net"], ["default"], r"SecurityGroups\[0\]: 'default' is not a security group"),
    ):
        with pytest.raises(InvalidRequest, match=match):
            env.call(
                "CreateVpcConnector",
                VpcConnectorName="db-access",
                Subnets=subnets,
                SecurityGroups=groups,
            )
    assert env.store.list_vpc_connectors() == []
    env.connector("db-access")
    with pytest.raises(InvalidRequest, match="already exists"):
        env.connector("db-access")
    env.connector("second")
    with pytest.raises(QuotaExceeded, match="vpc_connector_quota"):
        env.connector("third")


def test_a_service_egress_through_a_connector_joins_its_networks(env: Env) -> None:
    arn = env.connector("db-access", "db-net")["VpcConnectorArn"]
    service = env.service(EgressConfiguration={"EgressType": "VPC", "VpcConnectorArn": arn})
    assert service.spec.network.networks == ["db-net"]
    assert service.spec.network.to_api()["EgressConfiguration"] == {
        "EgressType": "VPC",
        "VpcConnectorArn": arn,
    }
    release = Release(revision="sha256:" + "1" * 64, image=IMAGE, port=8080)
    spec = instance_spec(service, service.spec, release, {}, "dep", 0)
    assert spec.networks == ("db-net",)
    # In use: the guide's rule, the model's error; the connector stays.
    with pytest.raises(InvalidRequest, match="used by service.*web"):
        env.call("DeleteVpcConnector", VpcConnectorArn=arn)
    assert env.store.get_vpc_connector(arn)["status"] == "ACTIVE"


def test_bad_egress_is_refused_and_no_service_is_stored(env: Env) -> None:
    unknown = "arn:aws:apprunner:us-east-1:000000000000:vpcconnector/nope/1/abc"
    for egress, match in (
        ({"EgressType": "VPC"}, "VpcConnectorArn: required when EgressType is VPC"),
        ({"EgressType": "DEFAULT", "VpcConnectorArn": unknown}, "only valid when EgressType"),
        ({"EgressType": "VPC", "VpcConnectorArn": unknown}, "no active VPC connector"),
    ):
        with pytest.raises(InvalidRequest, match=match):
            env.service(EgressConfiguration=egress)
    assert env.store.list_services() == []


def test_a_deleted_connector_is_inactive_and_its_name_takes_a_new_revision(env: Env) -> None:
    arn = env.connector("db-access")["VpcConnectorArn"]
    gone = env.call("DeleteVpcConnector", VpcConnectorArn=arn)["VpcConnector"]
    assert gone["Status"] == "INACTIVE" and gone["DeletedAt"] >= gone["CreatedAt"]
    assert env.call("ListVpcConnectors")["VpcConnectors"] == []
    with pytest.raises(ResourceNotFound):
        env.call("DeleteVpcConnector", VpcConnectorArn=arn)
    assert env.connector("db-access")["VpcConnectorRevision"] == 2


def test_a_private_service_needs_the_private_listener(tmp_path: Path) -> None:
    env = Env(tmp_path)  # no private_listen
    with pytest.raises(InvalidRequest, match="IsPubliclyAccessible.*set private_listen"):
        env.service(IngressConfiguration={"IsPubliclyAccessible": False})
    assert env.store.list_services() == []


def test_an_ingress_connection_reports_where_the_private_service_answers(env: Env) -> None:
    service = env.service(IngressConfiguration={"IsPubliclyAccessible": False})
    assert service.spec.network.to_api()["IngressConfiguration"] == {"IsPubliclyAccessible": False}
    made = env.call(
        "CreateVpcIngressConnection",
        ServiceArn=service.arn,
        VpcIngressConnectionName="web-private",
        IngressVpcConfiguration={"VpcId": "vpc-1", "VpcEndpointId": "vpce-1"},
    )["VpcIngressConnection"]
    assert made["Status"] == "AVAILABLE"
    assert made["DomainName"] == "web.localhost"
    assert made["AccountId"] == "000000000000" and made["ServiceArn"] == service.arn
    arn = made["VpcIngressConnectionArn"]
    with pytest.raises(InvalidRequest, match="already has VPC ingress connection web-private"):
        env.call(
            "CreateVpcIngressConnection",
            ServiceArn=service.arn,
            VpcIngressConnectionName="web-other",
            IngressVpcConfiguration={"VpcId": "vpc-1", "VpcEndpointId": "vpce-1"},
        )
    listed = env.call("ListVpcIngressConnections", Filter={"VpcEndpointId": "vpce-1"})
    assert listed["VpcIngressConnectionSummaryList"] == [
        {"VpcIngressConnectionArn": arn, "ServiceArn": service.arn}
    ]
    updated = env.call(
        "UpdateVpcIngressConnection",
        VpcIngressConnectionArn=arn,
        IngressVpcConfiguration={"VpcId": "vpc-2", "VpcEndpointId": "vpce-2"},
    )["VpcIngressConnection"]
    assert updated["IngressVpcConfiguration"] == {"VpcId": "vpc-2", "VpcEndpointId": "vpce-2"}
    gone = env.call("DeleteVpcIngressConnection", VpcIngressConnectionArn=arn)
    assert gone["VpcIngressConnection"]["Status"] == "DELETED"
    with pytest.raises(InvalidState, match="is DELETED"):
        env.call("DeleteVpcIngressConnection", VpcIngressConnectionArn=arn)
    assert env.call("ListVpcIngressConnections")["VpcIngressConnectionSummaryList"] == []


def test_bad_ingress_connections_are_refused_and_nothing_is_stored(
    env: Env, tmp_path: Path
) -> None:
    service = env.service()
    for params, error, match in (
        ({"IngressVpcConfiguration": {"VpcId": "vpc-1"}}, InvalidRequest, "VpcEndpointId"),
        (
            {"ServiceArn": service.arn.replace("web", "nope")},
            InvalidRequest,
            "ServiceArn: service .* not found",
        ),
    ):
        call = {
            "ServiceArn": service.arn,
            "VpcIngressConnectionName": "web-private",
            "IngressVpcConfiguration": {"VpcId": "vpc-1", "VpcEndpointId": "vpce-1"},
            **params,
        }
        with pytest.raises(error, match=match):
            env.call("CreateVpcIngressConnection", **call)
    assert env.store.list_vpc_ingress() == []
    bare = Env(tmp_path / "bare")
    with pytest.raises(InvalidRequest, match="set private_listen"):
        bare.call(
            "CreateVpcIngressConnection",
            ServiceArn=bare.service().arn,
            VpcIngressConnectionName="web-private",
            IngressVpcConfiguration={"VpcId": "vpc-1", "VpcEndpointId": "vpce-1"},
        )


def test_nonsense_vpc_settings_stop_the_start_naming_the_setting() -> None:
    VpcLimits().check()
    VpcLimits(private_listen="127.0.0.1:8791").check((80, 443))
    for limits, match in (
        (VpcLimits(private_listen="localhost:8791"), "private_listen must be an IPv4"),
        (VpcLimits(private_listen="10.0.0.5"), "private_listen must be an IPv4"),
        (VpcLimits(private_listen="192.0.2.77:8791"), "192.0.2.77 is not an address of this"),
        (VpcLimits(private_listen="127.0.0.1:80"), "port 80 is already http_port"),
        (VpcLimits(connector_quota=0), "vpc_connector_quota must be between"),
        (VpcLimits(ingress_quota=-1), "vpc_ingress_quota must be between"),
    ):
        with pytest.raises(InvalidRequest, match=match):
            limits.check((80, 443))


def test_connectors_and_ingress_connections_take_tags_until_deleted(env: Env) -> None:
    arn = env.connector("db-access")["VpcConnectorArn"]
    env.services.tag_resource(arn, [{"Key": "team", "Value": "data"}])
    assert env.services.list_tags(arn) == {"team": "data"}
    env.call("DeleteVpcConnector", VpcConnectorArn=arn)
    with pytest.raises(ResourceNotFound):
        env.services.list_tags(arn)
    service = env.service()
    conn = env.call(
        "CreateVpcIngressConnection",
        ServiceArn=service.arn,
        VpcIngressConnectionName="web-private",
        IngressVpcConfiguration={"VpcId": "vpc-1", "VpcEndpointId": "vpce-1"},
        Tags=[{"Key": "env", "Value": "prod"}],
    )["VpcIngressConnection"]
    assert env.services.list_tags(conn["VpcIngressConnectionArn"]) == {"env": "prod"}


def test_an_update_moves_a_service_onto_a_connector_which_stays_while_queued(env: Env) -> None:
    service = env.service()
    for op in env.store.list_operations(service.id):
        env.store.update_operation(op.id, status="SUCCEEDED")
    env.store.update_service(service.id, status="RUNNING")
    arn = env.connector("db-access", "db-net", "cache-net")["VpcConnectorArn"]
    egress = {"EgressType": "VPC", "VpcConnectorArn": arn}
    _, op_id = env.services.update_service(
        {"ServiceArn": service.arn, "NetworkConfiguration": {"EgressConfiguration": egress}}
    )
    queued = env.store.get_operation(op_id).params["spec"]["network"]
    assert queued["networks"] == ["db-net", "cache-net"]
    assert queued["publicly_accessible"] is True  # members not named keep their value
    # The update is not done yet, but the connector is in use already.
    with pytest.raises(InvalidRequest, match="used by service.*web"):
        env.call("DeleteVpcConnector", VpcConnectorArn=arn)
