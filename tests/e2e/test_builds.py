"""Image builds of the examples with the real docker daemon and the classic builder.

The two example images are built once per module (each into its own copy of the
example, under service names of this run) and reused; every image and container the
tests make is removed at the end.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import docker.errors
import httpx
import pytest

from slipway.builds import CodeConfig
from slipway.builds.builder import (
    LABEL_BUILD_REVISION,
    LABEL_BUILD_SERVICE,
    Builder,
    BuildResult,
    image_repository,
)
from slipway.builds.config import parse_apprunner_yaml
from slipway.builds.errors import BuildFailed, BuildTimeout
from testkit.harness import wait_for

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
RUN = uuid.uuid4().hex[:6]


class Log(list[str]):
    """A build log: the builder's ``log`` callable and the lines it got."""

    def __call__(self, line: str) -> None:
        self.append(line)

    def after(self, line: str) -> str:
        """The line that follows ``line`` (a build step) in the log."""
        return self[self.index(line) + 1]


@dataclasses.dataclass
class Example:
    service: str
    source: Path
    config: CodeConfig
    result: BuildResult
    log: Log


@pytest.fixture(scope="module")
def builder(docker_client: docker.DockerClient) -> Iterator[Builder]:
    made = Builder(client=docker_client)
    for image in made.runtimes["python3"].versions.values():
        try:
            docker_client.images.get(image)
        except docker.errors.ImageNotFound:
            pytest.fail(f"{image} is missing: scripts/build-base-images makes it")
    yield made
    for name in ("python-hello", "node-hello", "fail", "timeout", "prune"):
        made.remove_all(f"t{RUN}-{name}")


def build_example(builder: Builder, name: str, tmp: Path) -> Example:
    source = tmp / name
    shutil.copytree(EXAMPLES / name, source)
    config = parse_apprunner_yaml((source / "apprunner.yaml").read_text())
    log = Log()
    service = f"t{RUN}-{name}"
    return Example(
        service, source, config, builder.build(service, source, config, "1" * 40, log), log
    )


@pytest.fixture(scope="module")
def python_hello(builder: Builder, tmp_path_factory: pytest.TempPathFactory) -> Example:
    return build_example(builder, "python-hello", tmp_path_factory.mktemp("py"))


@pytest.fixture(scope="module")
def node_hello(builder: Builder, tmp_path_factory: pytest.TempPathFactory) -> Example:
    return build_example(builder, "node-hello", tmp_path_factory.mktemp("node"))


@pytest.fixture
def run_image(docker_client: docker.DockerClient) -> Iterator[Callable[..., str]]:
    """Start an image as App Runner would (PORT and run env given), return its base URL."""
    started = []

    def run(image: str, port: int, env: dict[str, str]) -> str:
        container = docker_client.containers.run(
            image,
            detach=True,
            environment={"PORT": str(port), **env},
            ports={f"{port}/tcp": ("127.0.0.1", None)},
        )
        started.append(container)

        def published() -> str | None:
            container.reload()
            bindings = container.ports.get(f"{port}/tcp")
            return bindings[0]["HostPort"] if bindings else None

        url = f"http://127.0.0.1:{wait_for(published, 10, 'a published port')}"
        wait_for(lambda: httpx.get(url + "/", timeout=1).status_code == 200, 15, url)
        return url

    yield run
    for container in started:
        container.remove(force=True)


@pytest.mark.parametrize("name", ["python-hello", "node-hello"])
def test_example_builds_and_answers(
    name: str, request: pytest.FixtureRequest, run_image: Callable[..., str]
) -> None:
    example: Example = request.getfixturevalue(name.replace("-", "_"))
    result = example.result
    assert result.image == f"{image_repository(example.service)}:1111111"
    assert result.runtime_version == ("3.11.2" if name == "python-hello" else "18.20.8")
    assert "[AppRunner] Build started" in example.log[0]
    assert example.log[-1].startswith("[AppRunner] Build finished in ")
    url = run_image(result.image, example.config.port, dict(example.config.env))
    assert httpx.get(url + "/").text == f"Hello from {name}\n"
    assert httpx.get(url + "/env/MESSAGE").text == "set in apprunner.yaml\n"
    assert httpx.get(url + "/uptime").text.startswith("up ")  # the dependency is installed


def test_image_carries_labels_and_no_run_env(
    python_hello: Example, docker_client: docker.DockerClient
) -> None:
    config = docker_client.images.get(python_hello.result.image).attrs["Config"]
    assert config["Labels"][LABEL_BUILD_SERVICE] == python_hello.service
    assert config["Labels"][LABEL_BUILD_REVISION] == "1" * 40
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["PORT"] == "8080" and env["APP_PORT"] == "8080"
    assert "MESSAGE" not in env  # run env is the deployment's to pass
    assert env["SSL_CERT_FILE"] == env["NODE_EXTRA_CA_CERTS"]


@pytest.mark.parametrize(
    ("name", "code_file", "install"),
    [
        ("python-hello", "app.py", "pip install -r requirements.txt"),
        ("node-hello", "server.js", "npm ci"),
    ],
)
def test_code_only_change_reuses_the_dependency_layer(
    name: str, code_file: str, install: str, builder: Builder, request: pytest.FixtureRequest
) -> None:
    example: Example = request.getfixturevalue(name.replace("-", "_"))
    with (example.source / code_file).open("a") as file:
        file.write(
            "\n// code-only change\n" if code_file.endswith(".js") else "\n# code-only change\n"
        )
    log = Log()
    result = builder.build(example.service, example.source, example.config, "2" * 40, log)
    step = next(line for line in log if line.startswith("[Build] Step") and install in line)
    assert log.after(step) == "[Build]  ---> Using cache"
    assert "[AppRunner] Dependency layer reused from the build cache" in log
    source_step = next(line for line in log if "COPY source/ ./" in line)
    assert log.after(source_step) != "[Build]  ---> Using cache"
    assert result.image_id != example.result.image_id


def test_failing_command_is_named(builder: Builder, python_hello: Example) -> None:
    config = dataclasses.replace(
        python_hello.config, build=(*python_hello.config.build, "echo going down >&2; exit 1")
    )
    with pytest.raises(BuildFailed) as caught:
        builder.build(f"t{RUN}-fail", python_hello.source, config, "3" * 40, Log())
    error = caught.value
    assert error.command == "echo going down >&2; exit 1"
    assert "build command failed (exit code 1): echo going down >&2; exit 1" in str(error)
    assert "going down" in error.output


def test_timeout_stops_the_build_and_leaves_no_container(
    docker_client: docker.DockerClient, python_hello: Example
) -> None:
    impatient = Builder(client=docker_client, timeout=5)
    config = dataclasses.replace(
        python_hello.config, build=(*python_hello.config.build, "echo waiting; sleep 600")
    )
    log = Log()
    started = time.monotonic()
    with pytest.raises(BuildTimeout, match="timed out after 5 s") as caught:
        impatient.build(f"t{RUN}-timeout", python_hello.source, config, "4" * 40, log)
    assert time.monotonic() - started < 20
    assert caught.value.command == "echo waiting; sleep 600"
    running = [line.split()[-1] for line in log if "---> Running in" in line]
    assert running  # the sleep step's container
    for container_id in running:
        with pytest.raises(docker.errors.NotFound):
            docker_client.api.inspect_container(container_id)
    leftovers = [  # this step's command exactly: other builds on the host may sleep too
        c.short_id
        for c in docker_client.containers.list(all=True, ignore_removed=True)
        if "echo waiting; sleep 600" in " ".join(c.attrs["Config"].get("Cmd") or [])
    ]
    assert leftovers == []


def test_prune_keeps_the_newest(docker_client: docker.DockerClient, node_hello: Example) -> None:
    keeper = Builder(client=docker_client, keep_images=2)
    service = f"t{RUN}-prune"
    tags = [
        keeper.build(
            service, node_hello.source, node_hello.config, f"{i:07x}" + "0" * 33, Log()
        ).image
        for i in range(1, 5)
    ]

    def present() -> set[str]:
        images = docker_client.images.list(name=image_repository(service))
        return {tag for image in images for tag in image.tags}

    assert present() == set(tags[2:])
    none_kept = Builder(client=docker_client, keep_images=0)
    assert none_kept.prune(service, keep=[tags[2]]) == [tags[3]]
    assert present() == {tags[2]}
    none_kept.remove_all(service)
    assert present() == set()
