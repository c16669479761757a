"""Service rules and the operations worker with the fake backend: states, ordering,
rollbacks and recovery, without Docker or Caddy."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from slipway.backends.fake import FakeBackend
from slipway.builds.fake import FakeBuilder
from slipway.config import Settings
from slipway.errors import (
    HealthCheckFailed,
    InvalidRequest,
    InvalidState,
    QuotaExceeded,
    ResourceNotFound,
)
from slipway.feedback import NoFeedback
from slipway.observe.events import EventBus
from slipway.observe.logs import LogStore
from slipway.operations.engine import Operations
from slipway.operations.journal import Journal
from slipway.operations.queue import OperationQueue
from slipway.operations.reconcile import stray_instances
from slipway.operations.routes import desired_routes
from slipway.operations.runner import InlineRunner, run_now
from slipway.records import Service
from slipway.routing.fake import FakeRouter
from slipway.routing.router import Route
from slipway.secretrefs import SecretLimits
from slipway.service_secrets import Secrets
from slipway.services import Services
from slipway.sources.check import SourceCheck
from slipway.sources.credentials import PullCredentials
from slipway.sources.fake import FakeGit, FakeRegistry
from slipway.store import Store
from slipway.triggers import Found
from slipway.vault import Vault

IMAGE = "127.0.0.1:5000/hello:v1"


class Env:
    def __init__(self, tmp: Path, **settings) -> None:
        self.settings = Settings(
            data_dir=tmp,
            config_dir=tmp,
            drain_seconds=0,
            settle_seconds=0,
            health_deadline=1,
            **settings,
        )
        self.vault = Vault(tmp / "key")
        self.store = Store(tmp / "db.sqlite", self.vault)
        self.registry = FakeRegistry({IMAGE: "sha256:" + "1" * 64})
        self.logs = LogStore(tmp / "logs")
        self.events = EventBus(self.store, region="us-east-1", account="0" * 12)
        self.journal = Journal(self.logs, self.events)
        self.queue = OperationQueue()
        self.credentials = PullCredentials(self.store, self.vault)
        self.secrets = Secrets(self.store, self.vault, SecretLimits())
        self.services = Services(
            self.store, self.settings, SourceCheck(self.registry), self.queue, self.journal
        )
        self.services.ensure_default_auto_scaling()
        self.backend = FakeBackend()
        self.router = FakeRouter()
        self.git = FakeGit()
        self.builder = FakeBuilder()
        self.unhealthy: set[str] = set()
        self.while_probing = lambda host: None  # what happens while an instance boots
        self.operations = Operations(
            self.store,
            self.settings,
            self.services,
            self.backend,
            self.router,
            self.journal,
            self.queue,
            git=self.git,
            builder=self.builder,
            newest=self._newest,
            tokens=lambda spec: None,
            feedback=NoFeedback(),
            credentials=self.credentials,
            secrets=self.secrets,
            runner=InlineRunner(),
            until_healthy=self._until_healthy,
        )
        self.dispatcher = self.operations.dispatcher
        self.reconciler = self.operations.reconciler
        self.routes = self.operations.routes

    def _newest(self, service, spec) -> Found:
        if spec.source.code:
            branch = spec.source.code.branch
            return Found(self.git.head("", branch), f"refs/heads/{branch}")
        return Found(self.registry(spec.source.image.identifier, "ECR"), "v1")

    def _until_healthy(self, host, port, *args, **kwargs):
        self.while_probing(host)
        for inst in self.backend.list_instances():
            if inst.host_ip == host and inst.revision in self.unhealthy:
                raise HealthCheckFailed("connection refused")
        yield from ()

    def drain(self) -> None:
        """Run every queued operation to its end, in order, as the dispatcher would."""
        while True:
            pending = self.store.operations_with_status("PENDING")
            if not pending:
                return
            run_now(self.dispatcher.run(pending[0]), sleep=lambda seconds: None)

    def create(self, name: str = "hello", **extra) -> Service:
        params = {
            "ServiceName": name,
            "SourceConfiguration": {
                "ImageRepository": {"ImageIdentifier": IMAGE, "ImageRepositoryType": "ECR"}
            },
            **extra,
        }
        service, _ = self.services.create_service(params)
        return service

    def status(self, service: dict) -> str:
        return self.store.get_service(service.id).status

    def ops(self, service: dict) -> list[tuple[str, str]]:
        return [(o.type, o.status) for o in self.store.list_operations(service.id)]


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(tmp_path)


def test_create_deploys_and_routes(env):
    service = env.create()
    assert env.status(service) == "OPERATION_IN_PROGRESS"
    env.drain()
    assert env.status(service) == "RUNNING"
    assert env.ops(service) == [("CREATE_SERVICE", "SUCCEEDED")]
    (inst,) = env.backend.list_instances()
    spec = env.backend.specs[inst.id]
    assert spec.port == 8080 and spec.image == f"127.0.0.1:5000/hello@{env.registry.tags[IMAGE]}"
    assert spec.cpu_units == 1024 and spec.memory_mb == 2048
    assert env.router.routes == [Route(host="hello.localhost", upstreams=(inst.address,))]


def test_update_replaces_instances_and_failed_update_rolls_back(env):
    service = env.create()
    env.drain()
    arn = service.arn
    old = env.backend.list_instances()[0]
    env.services.update_service(
        {
            "ServiceArn": arn,
            "SourceConfiguration": {
                "ImageRepository": {
                    "ImageIdentifier": IMAGE,
                    "ImageRepositoryType": "ECR",
                    "ImageConfiguration": {"RuntimeEnvironmentVariables": {"A": "1"}},
                }
            },
        }
    )
    env.drain()
    (new,) = env.backend.list_instances()
    assert new.id != old.id and env.backend.specs[new.id].env == {"A": "1"}

    bad = "127.0.0.1:5000/hello:broken"
    env.registry.tags[bad] = "sha256:" + "2" * 64
    env.unhealthy.add(env.registry.tags[bad])
    env.services.update_service(
        {
            "ServiceArn": arn,
            "SourceConfiguration": {
                "ImageRepository": {"ImageIdentifier": bad, "ImageRepositoryType": "ECR"}
            },
        }
    )
    env.drain()
    assert env.ops(service)[0] == ("UPDATE_SERVICE", "ROLLBACK_SUCCEEDED")
    assert env.status(service) == "RUNNING"
    assert [i.id for i in env.backend.list_instances()] == [new.id]
    kept = env.store.get_service(service.id).spec.source.image
    assert kept.identifier == IMAGE and kept.env == {"A": "1"}
    message = env.store.list_operations(service.id)[0].message
    assert "health check" in message and "previous configuration" in message


def test_create_that_never_gets_healthy_fails(env):
    env.unhealthy.add(env.registry.tags[IMAGE])
    service = env.create()
    env.drain()
    assert env.status(service) == "CREATE_FAILED"
    assert env.ops(service) == [("CREATE_SERVICE", "FAILED")]
    assert env.backend.list_instances() == []
    env.reconciler.reconcile_once()
    assert env.router.routes == [Route(host="hello.localhost", upstreams=())]


def test_pause_resume_keeps_revision(env):
    service = env.create()
    env.drain()
    first = env.registry.tags[IMAGE]
    env.services.pause_service(service.arn)
    env.drain()
    assert env.status(service) == "PAUSED"
    assert env.backend.list_instances() == []
    assert env.router.routes == [Route(host="hello.localhost", upstreams=(), paused=True)]
    with pytest.raises(InvalidState, match="paused"):
        env.services.start_deployment(service.arn)
    with pytest.raises(InvalidState, match="paused"):
        env.services.update_service({"ServiceArn": service.arn})

    env.registry.tags[IMAGE] = "sha256:" + "9" * 64  # a newer image appears
    env.services.resume_service(service.arn)
    env.drain()
    (inst,) = env.backend.list_instances()
    assert inst.revision == first

    env.services.start_deployment(service.arn)
    env.drain()
    (inst,) = env.backend.list_instances()
    assert inst.revision == "sha256:" + "9" * 64


def test_delete_removes_everything_and_cancels_queued(env):
    service = env.create()
    env.drain()
    env.services.start_deployment(service.arn)
    env.services.delete_service(service.arn)
    env.drain()
    assert env.status(service) == "DELETED"
    assert env.ops(service) == [
        ("DELETE_SERVICE", "SUCCEEDED"),
        ("START_DEPLOYMENT", "FAILED"),
        ("CREATE_SERVICE", "SUCCEEDED"),
    ]
    assert env.backend.list_instances() == []
    assert env.backend.removed_images
    assert env.router.routes == []
    with pytest.raises(InvalidState):
        env.services.delete_service(service.arn)


def test_bad_input_changes_nothing(env):
    env.create()
    env.drain()
    before = (env.store.list_services(), env.backend.list_instances())
    with pytest.raises(InvalidRequest, match="already exists"):
        env.create()
    with pytest.raises(InvalidRequest, match="hello.localhost"):
        env.create("HELLO")
    with pytest.raises(InvalidRequest, match="not found"):
        env.services.create_service(
            {
                "ServiceName": "other",
                "SourceConfiguration": {
                    "ImageRepository": {
                        "ImageIdentifier": "127.0.0.1:5000/none:v1",
                        "ImageRepositoryType": "ECR",
                    }
                },
            }
        )
    with pytest.raises(InvalidRequest, match="Memory"):
        env.create("other", InstanceConfiguration={"Cpu": "256", "Memory": "4096"})
    with pytest.raises(InvalidRequest, match="InstanceRoleArn"):
        env.create(
            "other",
            InstanceConfiguration={"InstanceRoleArn": "arn:aws:iam::000000000000:role/x"},
        )
    with pytest.raises(ResourceNotFound):
        env.services.pause_service("arn:aws:apprunner:us-east-1:000000000000:service/x/y")
    assert (env.store.list_services(), env.backend.list_instances()) == before


def test_quota(tmp_path):
    env = Env(tmp_path, service_quota=1)
    env.create()
    with pytest.raises(QuotaExceeded, match="1"):
        env.create("second")
    assert len(env.store.list_services()) == 1


def test_recover_restarts_cut_off_operation(env):
    service = env.create()
    op = env.store.operations_with_status("PENDING")[0]
    env.store.update_operation(op.id, status="IN_PROGRESS")
    env.dispatcher.recover()
    assert env.store.get_operation(op.id).status == "PENDING"
    env.drain()
    assert env.status(service) == "RUNNING"


def test_min_size_from_auto_scaling(env):
    asc = env.services.create_auto_scaling(
        {"AutoScalingConfigurationName": "pair", "MinSize": 2, "MaxSize": 4}
    )
    env.create(AutoScalingConfigurationArn=asc["arn"])
    env.drain()
    assert len(env.backend.list_instances()) == 2
    with pytest.raises(InvalidRequest, match="MinSize"):
        env.services.create_auto_scaling(
            {"AutoScalingConfigurationName": "bad1", "MinSize": 5, "MaxSize": 2}
        )
    with pytest.raises(InvalidRequest, match="used by a service"):
        env.services.delete_auto_scaling(asc["arn"], False)


def test_auto_scaling_revisions_and_quota(env):
    first = env.services.create_auto_scaling({"AutoScalingConfigurationName": "web1"})
    second = env.services.create_auto_scaling({"AutoScalingConfigurationName": "web1"})
    assert (first["revision"], second["revision"]) == (1, 2)
    name_only = first["arn"].rsplit("/", 2)[0]
    assert env.services.auto_scaling(name_only)["arn"] == second["arn"]
    env.services.delete_auto_scaling(second["arn"], False)
    assert env.services.auto_scaling(name_only)["arn"] == first["arn"]
    for i in range(9):
        env.services.create_auto_scaling({"AutoScalingConfigurationName": f"cfg{i}"})
    with pytest.raises(QuotaExceeded, match="names"):
        env.services.create_auto_scaling({"AutoScalingConfigurationName": "cfg-x"})


def test_desired_routes_and_strays_are_pure(env):
    service = env.create()
    env.drain()
    row = env.store.get_service(service.id)
    instances = env.backend.list_instances()
    assert desired_routes([row], instances, env.settings)[0].upstreams
    assert stray_instances([row], instances, busy=set()) == []
    orphan = dataclasses.replace(row, live_deployment_id="other")
    assert stray_instances([orphan], instances, busy=set()) == instances
    assert stray_instances([orphan], instances, busy={row.id}) == []


APPRUNNER_YAML = """version: 1.0
runtime: python3
build:
  commands:
    build:
      - pip install -r requirements.txt
run:
  command: python3 app.py
  network:
    port: 8000
    env: APP_PORT
  env:
    - name: GREETING
      value: hi
"""


def code_source(**extra) -> dict:
    return {
        "CodeRepository": {
            "RepositoryUrl": "http://127.0.0.1:9/app.git",
            "SourceCodeVersion": {"Type": "BRANCH", "Value": "main"},
            **extra,
        }
    }


def test_code_service_builds_and_runs_its_config(env):
    env.git.branches["main"] = {"apprunner.yaml": APPRUNNER_YAML, "app.py": "print()"}
    service, op_id = env.services.create_service(
        {"ServiceName": "code", "SourceConfiguration": code_source()}
    )
    env.drain()
    assert env.status(service) == "RUNNING"
    (inst,) = env.backend.list_instances()
    spec = env.backend.specs[inst.id]
    sha = env.git.head("", "main")
    assert spec.image == f"slipway/code:{sha[:7]}"
    assert spec.port == 8000
    assert spec.env == {"GREETING": "hi", "APP_PORT": "8000"}
    assert env.backend.pulled == []
    lines = [e.message for e in env.logs.read(service.id, f"deployment/{op_id}")[0]]
    assert any(sha[:7] in line and line.startswith("[AppRunner]") for line in lines)
    assert "[Build] step 1" in lines


def test_failed_build_keeps_old_revision(env):
    env.git.branches["main"] = {"apprunner.yaml": APPRUNNER_YAML}
    service, _ = env.services.create_service(
        {"ServiceName": "code", "SourceConfiguration": code_source()}
    )
    env.drain()
    (old,) = env.backend.list_instances()
    env.git.branches["main"]["app.py"] = "broken"
    env.builder.fail = "build command 'pip install -r requirements.txt' exited 1"
    op_id = env.services.start_deployment(service.arn)
    env.drain()
    assert env.ops(service)[0] == ("START_DEPLOYMENT", "FAILED")
    assert env.status(service) == "RUNNING"
    assert [i.id for i in env.backend.list_instances()] == [old.id]
    lines = [e.message for e in env.logs.read(service.id, f"deployment/{op_id}")[0]]
    assert "pip install -r requirements.txt" in lines[-2]


def test_code_service_config_errors_fail_the_operation(env):
    env.git.branches["main"] = {"app.py": "x"}
    service, _ = env.services.create_service(
        {"ServiceName": "code", "SourceConfiguration": code_source()}
    )
    env.drain()
    assert env.status(service) == "CREATE_FAILED"
    assert "apprunner.yaml: not found" in env.store.list_operations(service.id)[0].message
    assert env.backend.list_instances() == []

    other, _ = env.services.create_service(
        {
            "ServiceName": "other",
            "SourceConfiguration": code_source(
                SourceCodeVersion={"Type": "BRANCH", "Value": "nope"}
            ),
        }
    )
    env.drain()
    assert "nope" in env.store.list_operations(other.id)[0].message


def test_code_service_api_configuration(env):
    env.git.branches["main"] = {"app.py": "x"}
    env.services.create_service(
        {
            "ServiceName": "api",
            "SourceConfiguration": code_source(
                CodeConfiguration={
                    "ConfigurationSource": "API",
                    "CodeConfigurationValues": {
                        "Runtime": "PYTHON_311",
                        "BuildCommand": "pip install flask",
                        "StartCommand": "python3 app.py",
                        "Port": "9000",
                        "RuntimeEnvironmentVariables": {"A": "1"},
                    },
                }
            ),
        }
    )
    env.drain()
    (config,) = env.builder.configs
    assert (config.runtime, config.build, config.command, config.port) == (
        "python311",
        ("pip install flask",),
        "python3 app.py",
        9000,
    )


def test_a_runtime_this_host_cannot_build_is_refused_storing_nothing(env):
    """DOTNET_6 is App Runner's, but no registry here provides .NET 6: CreateService says
    so (InvalidRequestException), rather than a deployment failing later."""
    values = {"Runtime": "DOTNET_6", "StartCommand": "dotnet app.dll"}
    source = code_source(
        CodeConfiguration={"ConfigurationSource": "API", "CodeConfigurationValues": values}
    )
    with pytest.raises(
        InvalidRequest, match=r"CodeConfigurationValues\.Runtime: DOTNET_6: .*\.NET 6"
    ):
        env.services.create_service({"ServiceName": "dotnet", "SourceConfiguration": source})
    assert env.store.list_services() == []


def test_source_directory_cannot_escape(env):
    with pytest.raises(InvalidRequest, match="SourceDirectory"):
        env.services.create_service(
            {"ServiceName": "esc", "SourceConfiguration": code_source(SourceDirectory="../x")}
        )
    assert env.store.list_services() == []


def test_detected_revisions_coalesce(env):
    """Five pushes while a deployment runs: one queued deployment, of the newest."""
    service = env.create()
    env.drain()
    arn_id = service.id
    first = env.services.revision_detected(arn_id, "sha256:" + "a" * 64, ref="v1", trigger="poll")
    env.store.update_operation(first, status="IN_PROGRESS")  # under way: never cut short
    queued = [
        env.services.revision_detected(arn_id, "sha256:" + c * 64, ref="v1", trigger="webhook")
        for c in "bcdef"
    ]
    active = env.store.operations_with_status("PENDING", "IN_PROGRESS")
    assert [(o.id, o.params["revision"][-1]) for o in active] == [
        (first, "a"),
        (queued[-1], "f"),
    ]
    # The same revision seen again (a poll after the webhook) queues nothing.
    assert (
        env.services.revision_detected(arn_id, "sha256:" + "f" * 64, ref="v1", trigger="poll")
        is None
    )
    assert (
        env.services.revision_detected(arn_id, "sha256:" + "a" * 64, ref="v1", trigger="poll")
        is None
    )


def test_live_revision_is_not_redeployed(env):
    service = env.create()
    env.drain()
    live = env.store.get_service(service.id).live_revision
    assert env.services.revision_detected(service.id, live, ref="v1", trigger="poll") is None
    assert env.store.operations_with_status("PENDING") == []


def test_live_revision_seen_while_resuming_is_not_deployed_again(env):
    service = env.create()
    env.drain()
    env.services.pause_service(service.arn)
    env.drain()
    env.services.resume_service(service.arn)
    live = env.store.get_service(service.id).live_revision
    assert env.services.revision_detected(service.id, live, ref="v1", trigger="poll") is None
    assert [o.type for o in env.store.operations_with_status("PENDING")] == ["RESUME_SERVICE"]
    newer = "sha256:" + "9" * 64
    assert env.services.revision_detected(service.id, newer, ref="v1", trigger="poll")


def test_manual_mode_holds_new_revisions(env):
    service = env.create(
        SourceConfiguration={
            "ImageRepository": {"ImageIdentifier": IMAGE, "ImageRepositoryType": "ECR"},
            "AutoDeploymentsEnabled": False,
        }
    )
    env.drain()
    newer = "sha256:" + "7" * 64
    assert env.services.revision_detected(service.id, newer, ref="v1", trigger="poll") is None
    row = env.store.get_service(service.id)
    assert row.latest_revision == newer and row.live_revision != newer
    env.registry.tags[IMAGE] = newer
    env.services.start_deployment(service.arn)
    env.drain()
    assert env.store.get_service(service.id).live_revision == newer


def test_paused_service_only_records(env):
    service = env.create()
    env.drain()
    env.services.pause_service(service.arn)
    env.drain()
    newer = "sha256:" + "8" * 64
    assert env.services.revision_detected(service.id, newer, ref="v1", trigger="poll") is None
    assert env.store.get_service(service.id).latest_revision == newer


def test_ecr_images_are_pulled_with_their_hosts_login_ecr_public_ones_without(env):
    env.credentials.login("127.0.0.1:5000", "user", "pw")
    assert env.credentials.for_image(IMAGE, "ECR") == ("user", "pw")
    assert env.credentials.for_image(IMAGE, "ECR_PUBLIC") is None


# --- secrets bound to services ------------------------------------------------------

PLANTED = "planted-VALUE-4d1e"
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf"


def with_secret(env: Env, name: str, **config) -> Service:
    source = {
        "ImageRepository": {
            "ImageIdentifier": IMAGE,
            "ImageRepositoryType": "ECR",
            "ImageConfiguration": {"RuntimeEnvironmentSecrets": {"DB": SECRET_ARN}, **config},
        }
    }
    service, _ = env.services.create_service({"ServiceName": name, "SourceConfiguration": source})
    return service


def everything_written(env: Env, tmp: Path) -> bytes:
    """The store, every log stream and every event, as bytes to search."""
    files = [p for p in tmp.rglob("*") if p.is_file() and p.name != "key"]
    return b"".join(p.read_bytes() for p in files)


def test_a_granted_secret_reaches_only_the_instance_environment(env, tmp_path):
    env.secrets.put("db", PLANTED, ["with-db"])
    service = with_secret(env, "with-db", RuntimeEnvironmentVariables={"A": "1"})
    env.drain()
    assert env.status(service) == "RUNNING"
    (inst,) = env.backend.list_instances()
    assert env.backend.specs[inst.id].env == {"A": "1", "DB": PLANTED}
    described = env.store.get_service(service.id).spec.source.to_api()
    image_config = described["ImageRepository"]["ImageConfiguration"]
    assert image_config["RuntimeEnvironmentSecrets"] == {"DB": SECRET_ARN}
    assert PLANTED.encode() not in everything_written(env, tmp_path)


def test_an_ungranted_secret_fails_the_deployment_naming_it(env, tmp_path):
    env.secrets.put("db", PLANTED, ["someone-else"])
    service = with_secret(env, "no-grant")
    env.drain()
    assert env.status(service) == "CREATE_FAILED"
    message = env.store.list_operations(service.id)[0].message
    assert "DB: secret db is not granted to service no-grant" in message
    assert env.backend.list_instances() == []
    assert env.backend.pulled == []  # refused before the pull
    assert PLANTED.encode() not in everything_written(env, tmp_path)


def test_a_revoked_secret_fails_the_next_deployment_and_the_old_one_serves(env):
    env.secrets.put("db", PLANTED, ["revoked"])
    service = with_secret(env, "revoked")
    env.drain()
    (old,) = env.backend.list_instances()
    env.secrets.revoke("db", "revoked")
    env.services.start_deployment(service.arn)
    env.drain()
    assert env.ops(service)[0] == ("START_DEPLOYMENT", "FAILED")
    assert "not granted to service revoked" in env.store.list_operations(service.id)[0].message
    assert env.status(service) == "RUNNING"
    assert [i.id for i in env.backend.list_instances()] == [old.id]


def test_a_missing_secret_fails_a_code_service_before_its_build(env):
    yaml_text = APPRUNNER_YAML + f"  secrets:\n    - name: DB\n      value-from: {SECRET_ARN}\n"
    env.git.branches["main"] = {"apprunner.yaml": yaml_text}
    service, _ = env.services.create_service(
        {"ServiceName": "code", "SourceConfiguration": code_source()}
    )
    env.drain()
    assert env.status(service) == "CREATE_FAILED"
    message = env.store.list_operations(service.id)[0].message
    assert "DB: secret db-AbCdEf or db does not exist" in message
    assert env.builder.configs == []
    env.secrets.put("db", PLANTED, ["code-2"])
    other, _ = env.services.create_service(
        {"ServiceName": "code-2", "SourceConfiguration": code_source()}
    )
    env.drain()
    (inst,) = env.backend.list_instances()
    assert env.backend.specs[inst.id].env["DB"] == PLANTED


@pytest.mark.parametrize(
    "where", ["ImageConfiguration", "CodeConfigurationValues"], ids=["image", "code-api"]
)
def test_a_malformed_reference_is_refused_by_the_api_storing_nothing(env, where):
    secrets = {"RuntimeEnvironmentSecrets": {"DB": "arn:aws:s3:::bucket"}}
    if where == "ImageConfiguration":
        source = {
            "ImageRepository": {
                "ImageIdentifier": IMAGE,
                "ImageRepositoryType": "ECR",
                "ImageConfiguration": secrets,
            }
        }
    else:
        values = {"Runtime": "PYTHON_3", "StartCommand": "python3 app.py", **secrets}
        source = code_source(
            CodeConfiguration={"ConfigurationSource": "API", "CodeConfigurationValues": values}
        )
    with pytest.raises(InvalidRequest, match=f"{where}.RuntimeEnvironmentSecrets: DB: secret"):
        env.services.create_service({"ServiceName": "malformed", "SourceConfiguration": source})
    assert env.store.list_services() == []


def test_a_restart_is_reported_once_whatever_other_services_run(env):
    """The upkeep's memory of one service's instances survives the passes over the
    others: an instance restarted once is said once, not at every pass."""
    first, _ = env.create("one"), env.create("two")
    env.drain()
    (inst,) = env.backend.list_instances(first.id)
    env.backend.restart_instance(inst.id)
    for _ in range(3):
        env.reconciler.reconcile_once()
    events, _ = env.logs.read(first.id, "events")
    assert sum("the engine restarted it" in e.message for e in events) == 1
