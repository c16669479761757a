"""Managed runtimes and the Dockerfiles rendered from them: pure, no docker."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from slipway.builds import CodeConfig, SecretRef
from slipway.builds.builder import Builder, image_repository, image_tag
from slipway.builds.config import KNOWN_RUNTIMES
from slipway.builds.dockerfile import CA_ENV, CA_PATH, Plan, Step
from slipway.builds.errors import BuildFailed
from slipway.builds.progress import Progress
from slipway.builds.runtimes import (
    EnginesConflict,
    Runtime,
    RuntimeUnavailable,
    check_engines,
    dependencies_need_source,
    get_runtime,
    load_runtimes,
    resolve_for_source,
    resolve_version,
    satisfies,
)
from slipway.errors import InvalidRequest


@pytest.fixture(scope="module")
def runtimes() -> dict[str, Runtime]:
    return load_runtimes()


def with_versions(runtime: Runtime, *versions: str) -> Runtime:
    return dataclasses.replace(runtime, versions={v: f"img:{v}" for v in versions})


# --- load_runtimes, get_runtime ------------------------------------------------------


def test_load_runtimes(runtimes: dict[str, Runtime]) -> None:
    """Every runtime App Runner has is here; each buildable one names its base images."""
    assert sorted(runtimes) == sorted(KNOWN_RUNTIMES)
    python, node = runtimes["python3"], runtimes["nodejs18"]
    assert python.language == "python" and node.language == "nodejs"
    assert python.versions == {"3.11.2": "slipway/base-python:3.11.2"}
    assert runtimes["python311"].versions == python.versions
    assert node.versions == {"18.20.8": "slipway/base-nodejs:18.20.8"}
    assert python.default_command is None
    assert node.default_command == "npm start"
    assert {"requirements.txt", "Pipfile", "Pipfile.lock"} <= set(python.manifests)
    assert {"package.json", "package-lock.json", "npm-shrinkwrap.json", "yarn.lock"} <= set(
        node.manifests
    )
    assert "{{ base_image }}" in python.template


@pytest.mark.parametrize(
    ("name", "language", "major"),
    [
        ("nodejs12", "nodejs", "12"),
        ("nodejs14", "nodejs", "14"),
        ("nodejs16", "nodejs", "16"),
        ("nodejs18", "nodejs", "18"),
        ("nodejs22", "nodejs", "22"),
        ("python3", "python", "3"),
        ("python311", "python", "3.11"),
        ("go1", "go", "1"),
        ("ruby31", "ruby", "3.1"),
        ("php81", "php", "8"),  # PHP 8.2: no registry here has 8.1
        ("corretto8", "java", "11"),  # OpenJDK 11: no registry here has a Java 8 JDK
        ("corretto11", "java", "11"),
    ],
)
def test_each_runtime_ships_its_language(
    runtimes: dict[str, Runtime], name: str, language: str, major: str
) -> None:
    """Node.js majors are exact; the others the closest a registry here provides, and
    each says what it is made of (the errors quote it)."""
    runtime = runtimes[name]
    assert runtime.language == language and runtime.unavailable is None
    assert runtime.provides
    for version, image in runtime.versions.items():
        assert version == major or version.startswith(major + ".")
        assert image.startswith(f"slipway/base-{language}:") and image.endswith(":" + version)
    assert (runtime.default_command == "npm start") == (language == "nodejs")


def test_dotnet6_is_known_but_refused_saying_why(runtimes: dict[str, Runtime]) -> None:
    with pytest.raises(RuntimeUnavailable) as caught:
        get_runtime(runtimes, "dotnet6")
    message = str(caught.value)
    assert message.startswith("runtime dotnet6 is an App Runner runtime this host cannot build:")
    assert ".NET 6 SDK" in message and "available: corretto11, corretto8, go1" in message
    with pytest.raises(InvalidRequest, match="cannot be built here"):
        load_runtimes(base_image_overrides={"dotnet6": "mcr/dotnet:6"})


def test_unknown_runtime_lists_the_available_ones(runtimes: dict[str, Runtime]) -> None:
    with pytest.raises(RuntimeUnavailable) as caught:
        get_runtime(runtimes, "nodejs20")
    assert str(caught.value) == (
        "runtime nodejs20 is not available on this host; available: corretto11, corretto8,"
        " go1, nodejs12, nodejs14, nodejs16, nodejs18, nodejs22, php81, python3, python311,"
        " ruby31"
    )
    assert isinstance(caught.value, InvalidRequest)
    assert get_runtime(runtimes, "python311").name == "python311"


def test_base_image_overrides() -> None:
    runtimes = load_runtimes(
        base_image_overrides={
            "python3": "python:3.11-slim",
            "nodejs18:18.20.8": "node:18.20.8-slim",
            "python311:3.12.1": "python:3.12-slim",
        }
    )
    assert runtimes["python3"].versions == {"3.11.2": "python:3.11-slim"}
    assert runtimes["nodejs18"].versions == {"18.20.8": "node:18.20.8-slim"}
    # an exact key for a version the runtime lacks adds it; the others stay as shipped
    assert runtimes["python311"].versions == {
        "3.11.2": "slipway/base-python:3.11.2",
        "3.12.1": "python:3.12-slim",
    }
    assert resolve_version(runtimes["python311"], None) == ("3.12.1", "python:3.12-slim")
    both = load_runtimes(
        base_image_overrides={"python3": "python:3-slim", "python3:3.11.2": "mirror/py:3.11.2"}
    )
    assert both["python3"].versions == {"3.11.2": "mirror/py:3.11.2"}  # exact key wins


@pytest.mark.parametrize("key", ["ruby2", "python3:3.11"])
def test_bad_override_keys(key: str) -> None:
    with pytest.raises(InvalidRequest):
        load_runtimes(base_image_overrides={key: "x"})


def test_template_with_unknown_placeholder_is_refused(tmp_path: Path) -> None:
    runtime_dir = tmp_path / "python9"
    runtime_dir.mkdir()
    (runtime_dir / "runtime.yaml").write_text(
        'name: python9\nlanguage: python\nversions:\n  "9.0.0": img\n'
    )
    (runtime_dir / "Dockerfile.template").write_text("FROM {{ base_image }}\n{{ nope }}\n")
    with pytest.raises(InvalidRequest, match="nope"):
        load_runtimes(tmp_path)


def test_unquoted_float_version_key_is_refused(tmp_path: Path) -> None:
    runtime_dir = tmp_path / "python9"
    runtime_dir.mkdir()
    (runtime_dir / "runtime.yaml").write_text(
        "name: python9\nlanguage: python\nversions:\n  9.1: img\n"
    )
    with pytest.raises(InvalidRequest, match="exact quoted version"):
        load_runtimes(tmp_path)


# --- resolve_version -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("wanted", "expected"),
    [
        (None, "3.12.1"),  # newest
        ("3", "3.12.1"),  # major locked
        ("3.11", "3.11.9"),  # major.minor locked: newest patch
        ("3.11.2", "3.11.2"),  # exact
        ("3.10", "3.10.13"),
    ],
)
def test_resolve_version(runtimes: dict[str, Runtime], wanted: str | None, expected: str) -> None:
    runtime = with_versions(runtimes["python3"], "3.10.13", "3.11.2", "3.11.9", "3.12.1")
    assert resolve_version(runtime, wanted) == (expected, f"img:{expected}")


@pytest.mark.parametrize("wanted", ["3.9", "2", "3.11.3", "3.11.2.1", "latest"])
def test_resolve_version_missing_lists_versions(runtimes: dict[str, Runtime], wanted: str) -> None:
    runtime = with_versions(runtimes["python3"], "3.11.2", "3.11.9", "3.12.1")
    with pytest.raises(RuntimeUnavailable) as caught:
        resolve_version(runtime, wanted)
    assert "3.12.1, 3.11.9, 3.11.2" in str(caught.value)


def test_python3_asking_for_3_9_names_what_it_ships(runtimes: dict[str, Runtime]) -> None:
    with pytest.raises(RuntimeUnavailable) as caught:
        resolve_version(runtimes["python3"], "3.9")
    assert str(caught.value) == (
        "runtime-version 3.9: runtime python3 has no such version; on this host it is"
        " Python 3.11 (Debian bookworm's python3; App Runner's python3 is Python 3.8);"
        " versions available: 3.11.2"
    )


@pytest.mark.parametrize(("wanted", "found"), [(None, "8.2"), ("8", "8.2"), ("8.2", "8.2")])
def test_a_line_key_locks_major_and_minor(
    runtimes: dict[str, Runtime], wanted: str | None, found: str
) -> None:
    assert resolve_version(runtimes["php81"], wanted) == (found, "slipway/base-php:8.2")


def test_a_line_key_cannot_lock_a_patch(runtimes: dict[str, Runtime]) -> None:
    with pytest.raises(RuntimeUnavailable, match=r"so a patch level cannot be locked; write 8\.2$"):
        resolve_version(runtimes["php81"], "8.2.10")
    with pytest.raises(RuntimeUnavailable, match="on this host it is PHP 8.2") as caught:
        resolve_version(runtimes["php81"], "8.1")
    assert "versions available: 8.2" in str(caught.value)
    with pytest.raises(RuntimeUnavailable, match="no registry here provides a Java 8 JDK"):
        resolve_version(runtimes["corretto8"], "8")


def test_resolve_version_compares_numbers_not_text(runtimes: dict[str, Runtime]) -> None:
    runtime = with_versions(runtimes["nodejs18"], "18.9.0", "18.20.4")
    assert resolve_version(runtime, "18")[0] == "18.20.4"


# --- engines.node ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "ok"),
    [
        (">=18", True),
        (">= 18.1", True),
        (">18", False),
        (">17", True),
        ("<18", False),
        ("<=18", True),
        ("^18.0.0", True),
        ("^16", False),
        ("~18.20.0", True),
        ("~18.19", False),
        ("18", True),
        ("18.x", True),
        ("18.20.x", True),
        ("18.20.4", True),
        ("=18.20.4", True),
        ("v18.20.4", True),
        ("12.18.4", False),
        ("16.x || 18.x", True),
        ("14 || 16", False),
        (">=14 <18", False),
        (">=14 <19", True),
        ("16 - 18", True),
        ("16 - 18.19", False),
        ("*", True),
        ("x", True),
        ("", True),
    ],
)
def test_satisfies(spec: str, ok: bool) -> None:
    assert satisfies("18.20.4", spec) is ok


@pytest.mark.parametrize(
    ("version", "spec", "ok"),
    [("0.2.5", "^0.2.3", True), ("0.3.0", "^0.2.3", False), ("0.0.4", "^0.0.3", False)],
)
def test_caret_below_one(version: str, spec: str, ok: bool) -> None:
    assert satisfies(version, spec) is ok


def test_check_engines() -> None:
    check_engines({"engines": {"node": ">=18"}}, "18.20.4")
    check_engines({}, "18.20.4")  # no engines: nothing to agree with
    check_engines({"engines": {"npm": ">=10"}}, "18.20.4")
    with pytest.raises(EnginesConflict, match="'12.18.4' conflicts with the runtime version"):
        check_engines({"engines": {"node": "12.18.4"}}, "18.20.4")
    with pytest.raises(EnginesConflict, match="not a valid range"):
        check_engines({"engines": {"node": "lts"}}, "18.20.4")


def test_runtime_version_and_engines_conflict_fails(runtimes: dict[str, Runtime]) -> None:
    """The guide: apprunner.yaml's runtime-version overrides package.json; a conflict
    between engines.node and runtime-version fails the build."""
    runtime = with_versions(runtimes["nodejs18"], "18.19.0", "18.20.4")
    package = {"engines": {"node": "~18.19.0"}}
    assert resolve_for_source(runtime, "18.19", package)[0] == "18.19.0"
    with pytest.raises(EnginesConflict):
        resolve_for_source(runtime, "18.20", package)


def test_engines_picks_the_version_without_runtime_version(runtimes: dict[str, Runtime]) -> None:
    runtime = with_versions(runtimes["nodejs18"], "18.19.0", "18.20.4")
    assert resolve_for_source(runtime, None, {"engines": {"node": "<18.20"}})[0] == "18.19.0"
    assert resolve_for_source(runtime, None, {"engines": {"node": ">=18"}})[0] == "18.20.4"
    assert resolve_for_source(runtime, None, {})[0] == "18.20.4"
    with pytest.raises(EnginesConflict, match="accepts none of the nodejs18 versions"):
        resolve_for_source(runtime, None, {"engines": {"node": "16.x"}})


# --- which commands are dependency installs --------------------------------------------


@pytest.mark.parametrize(
    ("runtime", "command", "dependency"),
    [
        ("python3", "pip install -r requirements.txt", True),
        ("python3", "pip3 install --no-cache-dir -r requirements.txt", True),
        ("python3", "python -m pip install -r requirements.txt", True),
        ("python3", "pip install pipenv", True),
        ("python3", "pip install -U pip setuptools wheel", True),
        ("python3", "pipenv install", True),
        ("python3", "pip install -e .", False),
        ("python3", "pip install .", False),
        ("python3", "pip install -r requirements-dev.txt", False),
        ("python3", "pip install -r requirements.txt -c constraints.txt", False),
        ("python3", "pip install -r requirements.txt && python manage.py collectstatic", False),
        ("python3", "python manage.py test", False),
        ("nodejs18", "npm ci", True),
        ("nodejs18", "npm install", True),
        ("nodejs18", "npm install --production", True),
        ("nodejs18", "npm install --only=dev", True),
        ("nodejs18", "npm install -g grunt-cli", True),
        ("nodejs18", "yarn install --frozen-lockfile", True),
        ("nodejs18", "npm install grunt grunt-cli", False),  # rewrites package.json
        ("nodejs18", "npm ci --prefix=web", False),
        ("nodejs18", "npm run build", False),
        ("nodejs18", "node test.js", False),
    ],
)
def test_dependency_commands(
    runtimes: dict[str, Runtime], runtime: str, command: str, dependency: bool
) -> None:
    assert runtimes[runtime].is_dependency_command(command) is dependency


@pytest.mark.parametrize(
    ("manifests", "needs_source"),
    [
        ({"requirements.txt": "humanize==4.9.0\n# -e .\nrequests>=2  # pinned\n"}, False),
        ({"requirements.txt": "flask\n-e .\n"}, True),
        ({"requirements.txt": "-r base.txt\n"}, True),
        ({"requirements.txt": "./vendor/pkg\n"}, True),
        ({"requirements.txt": "pkg @ file:///app/pkg\n"}, True),
        ({"requirements.txt": "pkg @ https://example.com/pkg.whl\n"}, False),
        ({"package.json": json.dumps({"dependencies": {"ms": "^2"}})}, False),
        ({"package.json": json.dumps({"scripts": {"start": "node ."}})}, False),
        ({"package.json": json.dumps({"scripts": {"postinstall": "node x.js"}})}, True),
        ({"package.json": json.dumps({"dependencies": {"lib": "file:../lib"}})}, True),
        ({"package.json": json.dumps({"workspaces": ["a"]})}, True),
        ({"Pipfile": '[packages]\nmine = {path = ".", editable = true}\n'}, True),
        ({"Pipfile": "[packages]\nrequests = '*'\n"}, False),
    ],
)
def test_dependencies_need_source(manifests: dict[str, str], needs_source: bool) -> None:
    assert (dependencies_need_source(manifests) is not None) is needs_source


# --- render ----------------------------------------------------------------------------


@pytest.fixture()
def builder(tmp_path: Path, runtimes: dict[str, Runtime]) -> Builder:
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    return Builder(client=None, runtimes=runtimes, ca_bundle=ca, proxy_env={})


def lines_of(dockerfile: str) -> list[str]:
    return [line for line in dockerfile.splitlines() if line and not line.startswith("#")]


def index_of(lines: list[str], prefix: str) -> int:
    return next(i for i, line in enumerate(lines) if line.startswith(prefix))


PYTHON = CodeConfig(
    runtime="python3",
    pre_build=("pip install -U pip",),
    build=("pip install -r requirements.txt", "python manage.py collectstatic"),
    post_build=("python -m pytest -q",),
    build_env={"DJANGO_SETTINGS_MODULE": "site.settings", "TOKENISH": 'a "b" $c'},
    pre_run=("python manage.py migrate",),
    command="gunicorn site.wsgi",
    port=8000,
    port_env="APP_PORT",
    env={"RUN_ONLY": "run-env-value"},
    secrets=(SecretRef("DB_PASSWORD", "arn:aws:secretsmanager:us-east-1:1:secret:db"),),
)


def test_render_layer_order(builder: Builder, runtimes: dict[str, Runtime]) -> None:
    text = builder.render(
        runtimes["python3"], "3.11.2", "slipway/base-python:3.11.2", PYTHON, ["requirements.txt"]
    )
    lines = lines_of(text)
    assert lines[0] == "FROM slipway/base-python:3.11.2"
    order = [
        f"COPY .slipway/ca-certificates.crt {CA_PATH}",
        "ARG DJANGO_SETTINGS_MODULE=",
        "WORKDIR /app",
        "COPY .slipway/deps/ ./",
        'RUN ["/bin/sh", "-ec", "pip install -U pip"]',
        'RUN ["/bin/sh", "-ec", "pip install -r requirements.txt"]',
        "COPY source/ ./",
        'RUN ["/bin/sh", "-ec", "python manage.py collectstatic"]',
        'RUN ["/bin/sh", "-ec", "python -m pytest -q"]',
        "ENV PORT=8000 APP_PORT=8000",
        "EXPOSE 8000",
        "CMD ",
    ]
    positions = [index_of(lines, prefix) for prefix in order]
    assert positions == sorted(positions)
    assert lines[-1] == json_cmd("python manage.py migrate && exec gunicorn site.wsgi")


def json_cmd(script: str) -> str:
    return "CMD " + json.dumps(["/bin/bash", "-ec", script])


def test_render_keeps_run_env_and_secrets_out(builder: Builder, runtimes: dict[str, Runtime]):
    text = builder.render(runtimes["python3"], "3.11.2", "base", PYTHON, ["requirements.txt"])
    for absent in ("RUN_ONLY", "run-env-value", "DB_PASSWORD", "secretsmanager"):
        assert absent not in text
    # build env is ARG (build steps only), never ENV; its value is escaped for the lexer
    assert 'ARG TOKENISH="a \\"b\\" \\$c"' in text
    assert not any(line.startswith("ENV DJANGO") for line in text.splitlines())


def test_render_sets_the_ca_bundle_env(builder: Builder, runtimes: dict[str, Runtime]) -> None:
    text = builder.render(runtimes["nodejs18"], "18.20.4", "base", CodeConfig("nodejs18"))
    env_line = next(line for line in text.splitlines() if line.startswith("ENV SSL_CERT_FILE"))
    assert {f"{name}={CA_PATH}" for name in CA_ENV} == set(env_line[4:].split())
    assert set(CA_ENV) == {"SSL_CERT_FILE", "PIP_CERT", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS"}
    no_ca = Builder(client=None, runtimes=builder.runtimes, ca_bundle=None, proxy_env={})
    assert "SSL_CERT_FILE" not in no_ca.render(
        builder.runtimes["nodejs18"], "18.20.4", "base", CodeConfig("nodejs18")
    )


def test_render_node_defaults_to_npm_start(builder: Builder, runtimes: dict[str, Runtime]):
    config = CodeConfig(runtime="nodejs18", build=("npm ci",))
    lines = lines_of(
        builder.render(
            runtimes["nodejs18"], "18.20.4", "base", config, ["package.json", "package-lock.json"]
        )
    )
    assert lines[-1] == json_cmd("exec npm start")
    assert index_of(lines, 'RUN ["/bin/sh", "-ec", "npm ci"]') < index_of(lines, "COPY source/")
    assert "ENV PORT=8080" in lines


def test_render_python_needs_a_command(builder: Builder, runtimes: dict[str, Runtime]) -> None:
    with pytest.raises(BuildFailed, match="run.command is required"):
        builder.render(runtimes["python3"], "3.11.2", "base", CodeConfig("python3"))


def test_only_leading_dependency_commands_move_before_the_source(
    builder: Builder, runtimes: dict[str, Runtime]
) -> None:
    config = CodeConfig(
        runtime="nodejs18",
        pre_build=("node check.js",),  # needs the source: everything after stays in order
        build=("npm ci",),
    )
    lines = lines_of(builder.render(runtimes["nodejs18"], "18.20.4", "base", config, []))
    source = index_of(lines, "COPY source/")
    assert index_of(lines, 'RUN ["/bin/sh", "-ec", "node check.js"]') > source
    assert index_of(lines, 'RUN ["/bin/sh", "-ec", "npm ci"]') > source
    assert not any(line.startswith("COPY .slipway/deps") for line in lines)


def test_no_dependency_layer(builder: Builder, runtimes: dict[str, Runtime]) -> None:
    lines = lines_of(
        builder.render(
            runtimes["python3"],
            "3.11.2",
            "base",
            PYTHON,
            ["requirements.txt"],
            dependency_layer=False,
        )
    )
    assert not any(line.startswith("COPY .slipway/deps") for line in lines)
    assert index_of(lines, "COPY source/") < index_of(lines, 'RUN ["/bin/sh", "-ec", "pip')


def test_render_labels_are_one_quoted_line_at_the_end(
    builder: Builder, runtimes: dict[str, Runtime]
) -> None:
    labels = {"slipway.build.service": "svc", "slipway.build.runtime": 'nodejs18 "$x"'}
    config = CodeConfig("nodejs18")
    lines = lines_of(builder.render(runtimes["nodejs18"], "18.20.4", "b", config, labels=labels))
    assert lines[-1] == (
        'LABEL slipway.build.service="svc" slipway.build.runtime="nodejs18 \\"\\$x\\""'
    )
    assert sum(line.startswith("LABEL") for line in lines) == 1


def test_render_refuses_a_multiline_build_env(builder: Builder, runtimes: dict[str, Runtime]):
    config = CodeConfig("nodejs18", build_env={"A": "x\ny"})
    with pytest.raises(BuildFailed, match="line break"):
        builder.render(runtimes["nodejs18"], "18.20.4", "base", config)


# --- names and build output ------------------------------------------------------------


def test_image_names() -> None:
    assert image_tag("My-Service", "0123456789abcdef") == "slipway/my-service:0123456"
    assert image_repository("svc__a_b") == "slipway/svc__a_b"
    assert image_repository("svc-") == "slipway/svc"
    assert image_repository("a___b") == "slipway/a-b"


def test_progress_names_the_failing_command_with_a_tail() -> None:
    run = 'RUN ["/bin/sh", "-ec", "npm ci"]'
    plan = Plan("", {run: Step("build", "npm ci", before_source=True)})
    logged: list[str] = []
    progress = Progress(plan, logged.append)
    progress.feed({"stream": "Step 7/14 : " + run + "\n"})
    progress.feed({"stream": " ---> Running in 0123456789ab\n"})
    for n in range(15):
        progress.feed({"stream": f"\x1b[91mnpm ERR! line {n}\n\x1b[0m"})
    assert progress.container == "0123456789ab"
    error = progress.failure("The command '/bin/sh -ec npm ci' returned a non-zero code: 1")
    assert error.command == "npm ci" and error.before_source
    assert str(error).startswith("build command failed (exit code 1): npm ci\n")
    assert "npm ERR! line 14" in str(error) and "npm ERR! line 4" not in str(error)
    assert "\x1b" not in str(error) and len(error.output) == 10
    assert logged[0] == "[Build] Step 7/14 : " + run


def test_progress_reports_a_reused_dependency_layer() -> None:
    run = 'RUN ["/bin/sh", "-ec", "npm ci"]'
    plan = Plan("", {run: Step("build", "npm ci", before_source=True)})
    logged: list[str] = []
    progress = Progress(plan, logged.append)
    for chunk in ("Step 7/9 : ", run + "\n", " ---> Using cache\n", " ---> abc\n"):
        progress.feed({"stream": chunk})  # a line may arrive in pieces
    progress.feed({"aux": {"ID": "sha256:feed"}})
    assert "[AppRunner] Dependency layer reused from the build cache" in logged
    assert progress.image_id == "sha256:feed"


@pytest.mark.parametrize(
    ("config", "package", "message"),
    [
        (CodeConfig("nodejs20", build=("npm ci",)), None, "runtime nodejs20 is not available"),
        (CodeConfig("dotnet6", command="dotnet app.dll"), None, "provides the .NET 6 SDK"),
        (CodeConfig("python3", "3.9", command="python app.py"), None, "no such version"),
        (
            CodeConfig("nodejs18", "18", build=("npm ci",)),
            {"engines": {"node": "16.x"}},
            "conflicts with the runtime version 18.20.8",
        ),
        (CodeConfig("nodejs18"), "{not json", "package.json is not valid JSON"),
    ],
)
def test_build_fails_before_docker_on_config(
    builder: Builder, tmp_path: Path, config: CodeConfig, package: object, message: str
) -> None:
    """Bad runtimes and versions fail the build (terminal) without touching docker."""
    source = tmp_path / "src"
    source.mkdir()
    if package is not None:
        text = package if isinstance(package, str) else json.dumps(package)
        (source / "package.json").write_text(text)
    logged: list[str] = []
    with pytest.raises(BuildFailed, match=message):
        builder.build("svc1", source, config, "a" * 40, logged.append)
    assert builder.docker._client is None  # docker was never needed
