"""The Dockerfile of a build, rendered from a runtime's template and a CodeConfig.

Pure (no docker, no files), so the layer layout can be tested line by line; the
builder (``builder.py``) writes the result into the build context and runs it.

Layer layout, in order:

1. ``FROM`` the base image of the resolved runtime version.
2. The CA bundle, with ``SSL_CERT_FILE``, ``PIP_CERT``, ``REQUESTS_CA_BUNDLE`` and
   ``NODE_EXTRA_CA_CERTS`` pointing at it. These stay in the image: the app calls out
   through the same network as its build.
3. The runtime's own ``ENV`` lines, then the build env as ``ARG`` with defaults: every
   build command sees it, the image's environment does not (App Runner's build env is
   for the build stage only). Values do show in ``docker history``: build env is not
   for secrets, in App Runner either.
4. The dependency layer: ``COPY .slipway/deps/ ./`` and one ``RUN`` per dependency
   install. Only the *leading* pre-build/build commands that match the runtime's
   dependency patterns go here, so no command ever changes order; and none do when a
   manifest points back into the source (``-e .``, ``file:`` deps, npm install
   scripts). A code-only change then reuses this layer from docker's cache. Should an
   install fail here anyway, the build runs once more with every command after the
   source copy, App Runner's own order, and that result stands.
5. ``COPY source/ ./``, then one ``RUN`` per remaining pre-build, build and post-build
   command, each ``/bin/sh -ec`` in exec form so the failing one is named.
6. ``ENV PORT`` (and run.network.env), ``EXPOSE``, and ``CMD /bin/bash -ec "<pre-run> &&
   exec <command>"``. Run env and secrets are never baked: the deployment passes them to
   the container. bash, not sh: Debian's sh (dash) drops variables whose names are not
   a shell's (``my-secret``) from what it execs, and App Runner's names need not be.
   Last, one ``LABEL`` line (``slipway.build.*``): the API's ``labels=`` would cost the
   classic builder a step per label.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from . import CodeConfig
from .errors import BuildFailed
from .runtimes import Runtime

CA_PATH = "/usr/local/share/slipway/ca-certificates.crt"
CA_ENV = ("SSL_CERT_FILE", "PIP_CERT", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Step:
    phase: str  # pre-build, build, post-build
    command: str
    before_source: bool


@dataclass(frozen=True)
class Plan:
    dockerfile: str
    steps: dict[str, Step]  # the RUN instruction, as the builder echoes it -> step

    @property
    def dependency_steps(self) -> int:
        return sum(step.before_source for step in self.steps.values())


def _run_line(command: str) -> str:
    # Exec form: the command reaches sh verbatim, whatever quotes or $ it holds.
    return "RUN " + json.dumps(["/bin/sh", "-ec", command])


def _quoted(value: str) -> str:
    """A double-quoted word for the Dockerfile lexer (ARG, LABEL): no $ expansion."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


def _fill(template: str, values: Mapping[str, str]) -> str:
    """Fill ``{{ name }}`` slots; a line holding only an empty slot disappears."""
    out: list[str] = []
    for line in template.splitlines():
        only = re.fullmatch(r"\s*\{\{\s*(\w+)\s*\}\}\s*", line)
        if only and not values[only[1]]:
            continue
        out.append(re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: values[m[1]], line))
    return "\n".join(out) + "\n"


def make_plan(
    runtime: Runtime,
    version: str,
    base_image: str,
    config: CodeConfig,
    manifests: Sequence[str],
    dependency_layer: bool,
    labels: Mapping[str, str],
    *,
    with_ca: bool,
) -> Plan:
    """The Dockerfile and its RUN steps (see the module docstring for the layout).

    ``with_ca``: the context holds the host CA bundle, and the image gets it.
    """
    commands = [("pre-build", c) for c in config.pre_build]
    commands += [("build", c) for c in config.build]
    early = 0
    if dependency_layer:
        while early < len(commands) and runtime.is_dependency_command(commands[early][1]):
            early += 1
    steps: dict[str, Step] = {}
    dependencies: list[str] = []
    if early:
        if manifests:
            dependencies.append("COPY .slipway/deps/ ./")
        for phase, command in commands[:early]:
            steps[_run_line(command)] = Step(phase, command, before_source=True)
            dependencies.append(_run_line(command))
    build: list[str] = []
    rest = commands[early:] + [("post-build", c) for c in config.post_build]
    for phase, command in rest:
        steps.setdefault(_run_line(command), Step(phase, command, before_source=False))
        build.append(_run_line(command))

    build_env: list[str] = []
    for name, value in config.build_env.items():
        if not _ENV_NAME.fullmatch(name):
            raise BuildFailed(f"build env name {name!r} is not a valid variable name")
        if "\n" in value or "\r" in value:
            raise BuildFailed(f"build env {name}: a value cannot hold a line break")
        build_env.append(f"ARG {name}={_quoted(value)}")

    certificates = ""
    if with_ca:
        certificates = f"COPY .slipway/ca-certificates.crt {CA_PATH}\nENV " + " ".join(
            f"{name}={CA_PATH}" for name in CA_ENV
        )

    command = config.command or runtime.default_command
    if not command:
        raise BuildFailed(f"run.command is required for runtime {runtime.name}")
    port_env = [f"PORT={config.port}"]
    if config.port_env and config.port_env != "PORT":
        if not _ENV_NAME.fullmatch(config.port_env):
            raise BuildFailed(f"run.network.env {config.port_env!r} is not a variable name")
        port_env.append(f"{config.port_env}={config.port}")
    start = " && ".join([*config.pre_run, f"exec {command}"])
    run = [
        "ENV " + " ".join(port_env),
        f"EXPOSE {config.port}",
        "CMD " + json.dumps(["/bin/bash", "-ec", start]),
    ]
    if labels:
        # One LABEL line, last: the API's labels= costs the classic builder a step
        # (a container and a commit) per label.
        run.append("LABEL " + " ".join(f"{k}={_quoted(v)}" for k, v in labels.items()))
    dockerfile = _fill(
        runtime.template,
        {
            "base_image": base_image,
            "runtime_version": version,
            "certificates": certificates,
            "build_env": "\n".join(build_env),
            "dependencies": "\n".join(dependencies),
            "source": "COPY source/ ./",
            "build": "\n".join(build),
            "run": "\n".join(run),
        },
    )
    return Plan(dockerfile, steps)
