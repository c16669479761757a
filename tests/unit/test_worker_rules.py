"""Worker services (``workers.py``) with the fake backend: the tag's modes, what a worker
refuses, no route, start-first and stop-first rollouts, pause and resume, crashes."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_metrics import parse_prometheus, value
from test_services_worker import IMAGE, Env
from typer.testing import CliRunner

from slipway.builds.config import parse_apprunner_yaml
from slipway.builds.yamlnodes import ConfigFileError
from slipway.cli import app
from slipway.errors import InvalidRequest
from slipway.observe.metrics import Metrics
from slipway.workers import PARALLEL, SINGLE, WORKER_TAG, check_network, check_request, mode_of

NEWER = "sha256:" + "9" * 64


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(tmp_path, worker_up_seconds=0)


def worker(env: Env, name: str = "jobs", value: str = "true", **extra):
    return env.create(name, Tags=[{"Key": WORKER_TAG, "Value": value}], **extra)


def image_source(**conf) -> dict:
    repo = {"ImageIdentifier": IMAGE, "ImageRepositoryType": "ECR"}
    return {"ImageRepository": {**repo, **({"ImageConfiguration": conf} if conf else {})}}


@pytest.mark.parametrize(
    ("tags", "mode"),
    [({}, ""), ({WORKER_TAG: ""}, PARALLEL), ({WORKER_TAG: "True"}, PARALLEL),
     ({WORKER_TAG: " single "}, SINGLE)],
)  # fmt: skip
def test_the_tag_gives_the_mode(tags, mode):
    assert mode_of(tags) == mode


def test_an_unknown_mode_is_refused_naming_the_choices():
    with pytest.raises(InvalidRequest, match="'sometimes' is not a worker mode.*'single'"):
        mode_of({WORKER_TAG: "sometimes"})


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"SourceConfiguration": image_source(Port="9000")}, "ImageConfiguration.Port"),
        (
            {
                "SourceConfiguration": {
                    "CodeRepository": {
                        "CodeConfiguration": {"CodeConfigurationValues": {"Port": "8000"}}
                    }
                }
            },
            "CodeConfigurationValues.Port",
        ),
        ({"HealthCheckConfiguration": {"Protocol": "HTTP"}}, "HealthCheckConfiguration"),
        ({"HealthCheckConfiguration": {"Path": "/up"}}, "HealthCheckConfiguration"),
    ],
)
def test_a_worker_refuses_a_port_and_an_http_health_check(params, field):
    check_request("", params, 1)  # a web service may have them
    with pytest.raises(InvalidRequest, match=field):
        check_request(PARALLEL, params, 1)


def test_a_worker_does_not_scale_to_zero(env):
    idle = {"Key": "slipway:idle-timeout", "Value": "10m"}
    with pytest.raises(InvalidRequest, match="slipway:idle-timeout does not apply to a worker"):
        env.create("jobs", Tags=[{"Key": WORKER_TAG, "Value": "true"}, idle])
    assert env.store.list_services() == []
    jobs = worker(env)
    env.drain()
    with pytest.raises(InvalidRequest, match="no request ever wakes it"):
        env.services.tag_resource(jobs.arn, [idle])


def test_a_single_worker_runs_one_instance():
    check_request(PARALLEL, {}, 3)
    with pytest.raises(InvalidRequest, match="exactly one instance.*MinSize 3"):
        check_request(SINGLE, {}, 3)


def test_a_code_worker_has_no_run_network():
    yaml = b"version: 1.0\nruntime: python3\nbuild:\n  commands:\n    build: [true]\n"
    plain = parse_apprunner_yaml(yaml + b"run:\n  command: python3 w.py\n")
    web = parse_apprunner_yaml(
        yaml + b"run:\n  command: python3 w.py\n  network:\n    port: 8000\n"
    )
    assert not plain.network and web.network
    check_network(PARALLEL, plain.network, "apprunner.yaml")
    check_network("", web.network, "apprunner.yaml")
    with pytest.raises(ConfigFileError, match="apprunner.yaml, key run.network: a worker"):
        check_network(PARALLEL, web.network, "apprunner.yaml")


def test_a_worker_runs_without_port_or_route(env):
    web, jobs = env.create("web"), worker(env)
    env.drain()
    assert env.status(jobs) == "RUNNING"
    (inst,) = env.backend.list_instances(jobs.id)
    assert env.backend.specs[inst.id].port == 0 and inst.address is None
    env.reconciler.reconcile_once()
    (route,) = env.router.routes  # the web service's only
    assert route.host == "web.localhost" and route.upstreams
    assert env.store.get_service(web.id).spec.worker == ""


def test_a_worker_with_a_port_is_refused_and_nothing_is_stored(env):
    with pytest.raises(InvalidRequest, match="ImageConfiguration.Port: a worker service"):
        worker(env, SourceConfiguration=image_source(Port="8080"))
    assert env.store.list_services() == []


def test_an_update_cannot_give_a_worker_a_port(env):
    jobs = worker(env)
    env.drain()
    with pytest.raises(InvalidRequest, match="has no HTTP port"):
        env.services.update_service(
            {"ServiceArn": jobs.arn, "SourceConfiguration": image_source(Port="80")}
        )
    assert env.status(jobs) == "RUNNING"


def test_the_worker_tag_cannot_change_after_creation(env):
    web, jobs = env.create("web"), worker(env)
    env.drain()
    with pytest.raises(InvalidRequest, match="this one is a web service"):
        env.services.tag_resource(web.arn, [{"Key": WORKER_TAG, "Value": "true"}])
    with pytest.raises(InvalidRequest, match="this one is a worker"):
        env.services.untag_resource(jobs.arn, [WORKER_TAG])
    assert env.services.list_tags(jobs.arn) == {WORKER_TAG: "true"}
    env.services.tag_resource(jobs.arn, [{"Key": "team", "Value": "data"}])  # others may


def _deploy_newer(env: Env, service) -> list[tuple[str, bool]]:
    """Deploy a newer image; returns, for each instance started, its revision and whether
    an instance of the old revision was running at that moment."""
    seen: list[tuple[str, bool]] = []
    start = env.backend.start_instance

    def watched(spec):
        old = [i for i in env.backend.list_instances(service.id) if i.revision != spec.revision]
        seen.append((spec.revision, any(i.running for i in old)))
        return start(spec)

    env.backend.start_instance = watched
    env.registry.tags[IMAGE] = NEWER
    env.services.start_deployment(service.arn)
    env.drain()
    return seen


def test_a_worker_rollout_starts_the_new_before_it_stops_the_old(env):
    jobs = worker(env)
    env.drain()
    assert _deploy_newer(env, jobs) == [(NEWER, True)]
    (inst,) = env.backend.list_instances(jobs.id)
    assert inst.revision == NEWER and inst.running


def test_a_single_worker_rollout_stops_the_old_first(env):
    jobs = worker(env, value="single")
    env.drain()
    assert _deploy_newer(env, jobs) == [(NEWER, False)]
    (inst,) = env.backend.list_instances(jobs.id)
    assert inst.revision == NEWER


def test_a_worker_that_exits_at_once_fails_to_deploy_and_says_so(env):
    env.backend.exit_on_start[f"127.0.0.1:5000/hello@{env.registry.tags[IMAGE]}"] = 3
    jobs = worker(env)
    env.drain()
    assert env.status(jobs) == "CREATE_FAILED"
    message = env.store.list_operations(jobs.id)[0].message
    assert "worker instance" in message and "exited with exit code 3" in message


def test_a_crashed_worker_is_reported_and_a_missing_one_replaced(env):
    jobs = worker(env)
    env.drain()
    (inst,) = env.backend.list_instances(jobs.id)
    env.backend.restart_instance(inst.id)
    env.reconciler.reconcile_once()
    env.backend.stop_instance(inst.id)
    env.reconciler.reconcile_once()
    events = [e.message for e in env.logs.read(jobs.id, "events")[0]]
    assert any("the engine restarted it (restart 1)" in m for m in events)
    assert any("instance(s) missing; starting replacements" in m for m in events)
    (fresh,) = env.backend.list_instances(jobs.id)
    assert fresh.id != inst.id and fresh.running


def test_pause_stops_a_worker_and_resume_starts_it(env):
    jobs = worker(env)
    env.drain()
    env.services.pause_service(jobs.arn)
    env.drain()
    assert env.status(jobs) == "PAUSED" and env.backend.list_instances(jobs.id) == []
    assert env.router.routes == []  # not even a paused route: a worker has none
    env.services.resume_service(jobs.arn)
    env.drain()
    (inst,) = env.backend.list_instances(jobs.id)
    assert env.status(jobs) == "RUNNING" and inst.running
    assert env.router.routes == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--worker", "--port", "9000"], "a worker service has no HTTP port; leave out --port"),
        (["--single"], "--single applies to a worker: give --worker too"),
    ],
)
def test_the_cli_refuses_a_worker_with_a_port(args, message):
    result = CliRunner().invoke(app, ["services", "create", "w", "--image", IMAGE, *args])
    assert result.exit_code == 1 and message in result.output


def test_restarts_are_a_gauge_per_live_instance(tmp_path: Path):
    metrics = Metrics(tmp_path / "access.log")
    metrics.set_restarts({("jobs", "i1"): 2})
    samples = parse_prometheus(metrics.prometheus())
    assert value(samples, "slipway_instance_restarts", service="jobs", instance="i1") == 2
    metrics.set_restarts({})
    samples = parse_prometheus(metrics.prometheus())
    assert not any(name == "slipway_instance_restarts" for name, _ in samples)
