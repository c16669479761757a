"""The two sources of a code service's build and run settings, turned into ``CodeConfig``.

* ``parse_apprunner_yaml``: the repository's ``apprunner.yaml`` (ConfigurationSource
  REPOSITORY), the whole v1.0 schema of the developer guide's "Referencia del archivo de
  configuración de App Runner", plus the newer ``run.pre-run`` and ``run.secrets``.
* ``from_api_values``: the API's ``CodeConfigurationValues`` (ConfigurationSource API).

A broken file is a terminal failure of the deployment (STYLE.md #6), so every error is a
``ConfigFileError`` that names the file, the line and the dotted key, e.g.
``apprunner.yaml line 7, key run.network.port: 'abc' is not a port number (1-65535)``
(the YAML side, and its safety limits, are ``yamlnodes.py``'s).

As App Runner reads the file:

* ``runtime`` is matched without regard to case (the guide's runtime tables write
  ``Python3``, its examples ``python3``); ``CodeConfig.runtime`` is the lowercase name.
* An optional key written with no value (``network:`` alone) is absent, as in any YAML
  reader that maps null to "not set"; a required one is still missing.
* ``run.env`` and ``run.secrets`` names follow App Runner's rule, not a shell's
  (``envnames.py``): ``name: my-secret`` reaches the app as ``my-secret``.

Decisions the guide leaves open:

* ``run.command`` is required, except for ``nodejs*`` runtimes, where no command means
  ``npm start`` (the guide's Node.js chapter); ``CodeConfig.command`` is then None. The
  API's ``StartCommand`` follows the same rule.
* ``build`` may be left out (an app with nothing to install needs no build step); when
  present, ``build.commands.build`` is required and non-empty, as the guide says.
* Commands are lists of strings, the only documented form; a single string is refused
  with a hint showing the list form. Each command is one shell line (like the API's
  ``BuildCommand``/``StartCommand`` pattern); a plain scalar wrapped over several lines
  folds into one line, as YAML defines.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any

import yaml

from ..errors import InvalidRequest
from ..secretrefs import parse_reference
from . import CodeConfig, SecretRef
from .envnames import MAX_SECRET_NAME, MAX_VARIABLE_NAME, env_name_problem
from .yamlnodes import (
    MAX_CONFIG_BYTES,
    TAG,
    ConfigFileError,
    Walker,
    compose,
    decode,
    describe,
    port_number,
)

__all__ = [
    "KNOWN_RUNTIMES",
    "MAX_CONFIG_BYTES",
    "RUNTIME_NAMES",
    "ConfigFileError",
    "from_api_values",
    "is_node_runtime",
    "parse_apprunner_yaml",
]

#: botocore's ``Runtime`` enum -> the apprunner.yaml runtime name.
RUNTIME_NAMES: dict[str, str] = {
    "PYTHON_3": "python3",
    "NODEJS_12": "nodejs12",
    "NODEJS_14": "nodejs14",
    "CORRETTO_8": "corretto8",
    "CORRETTO_11": "corretto11",
    "NODEJS_16": "nodejs16",
    "GO_1": "go1",
    "DOTNET_6": "dotnet6",
    "PHP_81": "php81",
    "RUBY_31": "ruby31",
    "PYTHON_311": "python311",
    "NODEJS_18": "nodejs18",
    "NODEJS_22": "nodejs22",
}
#: Every runtime name App Runner knows; whether slipway has it is ``runtimes.py``'s say.
KNOWN_RUNTIMES: tuple[str, ...] = tuple(sorted(RUNTIME_NAMES.values()))

_RUNTIME_VERSION = re.compile(r"[0-9]+(?:\.[0-9]+){0,2}")
_VERSION = re.compile(r"1(?:\.0+)?")
_API = "SourceConfiguration.CodeRepository.CodeConfiguration.CodeConfigurationValues"


def is_node_runtime(runtime: str) -> bool:
    """Node.js runtimes start the app with ``npm start`` when no command is given."""
    return runtime.startswith("nodejs")


# --- apprunner.yaml ------------------------------------------------------------------


def parse_apprunner_yaml(text: str | bytes, filename: str = "apprunner.yaml") -> CodeConfig:
    """Parse and validate an apprunner.yaml; raise ``ConfigFileError`` on any flaw."""
    source = decode(text, filename)
    if not source.strip():
        raise ConfigFileError(filename, None, None, "the file is empty")
    root = compose(source, filename)
    if root is None:
        raise ConfigFileError(filename, None, None, "the file is empty (only comments)")
    w = Walker(filename)
    if not isinstance(root, yaml.MappingNode):
        raise w.fail(root, None, f"expected a mapping of keys at the top, got {describe(root)}")
    top = w.mapping(root, "", ("version", "runtime", "build", "run"), ("version", "runtime", "run"))

    version = top["version"]
    if not (
        isinstance(version, yaml.ScalarNode)
        and version.tag in (TAG + "float", TAG + "int", TAG + "str")
        and _VERSION.fullmatch(version.value.strip())
    ):
        raise w.fail(version, "version", f"unsupported version {describe(version)}; use 1.0")

    written = w.text(top["runtime"], "runtime").strip()
    runtime = written.lower()
    if runtime not in KNOWN_RUNTIMES:
        close = difflib.get_close_matches(runtime, KNOWN_RUNTIMES, n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise w.fail(
            top["runtime"],
            "runtime",
            f"unknown runtime {written!r}; {hint}known runtimes: {', '.join(KNOWN_RUNTIMES)}",
        )

    fields: dict[str, Any] = {"runtime": runtime}
    if "build" in top:
        fields.update(_build_section(w, top["build"]))
    fields.update(_run_section(w, top["run"], runtime))
    return CodeConfig(**fields)


def _build_section(w: Walker, node: yaml.Node) -> dict[str, Any]:
    build = w.mapping(node, "build", ("commands", "env"), ("commands",))
    commands = w.mapping(
        build["commands"], "build.commands", ("pre-build", "build", "post-build"), ("build",)
    )
    out: dict[str, Any] = {
        "build": w.commands(commands["build"], "build.commands.build", required=True)
    }
    if "pre-build" in commands:
        out["pre_build"] = w.commands(commands["pre-build"], "build.commands.pre-build")
    if "post-build" in commands:
        out["post_build"] = w.commands(commands["post-build"], "build.commands.post-build")
    if "env" in build:
        out["build_env"] = {n: v for n, v, _ in w.pairs(build["env"], "build.env", "value")}
    return out


def _run_section(w: Walker, node: yaml.Node, runtime: str) -> dict[str, Any]:
    known = ("runtime-version", "pre-run", "command", "network", "env", "secrets")
    required = () if is_node_runtime(runtime) else ("command",)
    run = w.mapping(node, "run", known, required)
    out: dict[str, Any] = {}
    if "runtime-version" in run:
        version_node = run["runtime-version"]
        version = w.text(version_node, "run.runtime-version").strip()
        if not _RUNTIME_VERSION.fullmatch(version):
            raise w.fail(
                version_node,
                "run.runtime-version",
                f"{version!r} is not a version major[.minor[.patch]], e.g. 3.11 or 18.19.0",
            )
        out["runtime_version"] = version
    if "pre-run" in run:
        out["pre_run"] = w.commands(run["pre-run"], "run.pre-run")
    if "command" in run:
        out["command"] = w.command(run["command"], "run.command")
    if "network" in run:
        network = w.mapping(run["network"], "run.network", ("port", "env"))
        out["network"] = True
        if "port" in network:
            out["port"] = w.port(network["port"], "run.network.port")
        if "env" in network:
            out["port_env"] = w.shell_name(network["env"], "run.network.env")
    env = w.pairs(run["env"], "run.env", "value", MAX_VARIABLE_NAME) if "env" in run else []
    secrets = (
        w.pairs(run["secrets"], "run.secrets", "value-from", MAX_SECRET_NAME)
        if "secrets" in run
        else []
    )
    env_lines = {name: line for name, _, line in env}
    for i, (name, _, line) in enumerate(secrets):
        if name in env_lines:
            raise w.fail(
                line,
                f"run.secrets[{i}].name",
                f"'{name}' is already a run.env variable (line {env_lines[name]})",
            )
    for i, (_, reference, line) in enumerate(secrets):
        try:
            parse_reference(reference)
        except InvalidRequest as exc:
            raise w.fail(line, f"run.secrets[{i}].value-from", exc.message) from exc
    out["env"] = {name: value for name, value, _ in env}
    out["secrets"] = tuple(SecretRef(name, value) for name, value, _ in secrets)
    return out


# --- the API's CodeConfigurationValues ------------------------------------------------


def from_api_values(values: Mapping[str, Any]) -> CodeConfig:
    """``CodeConfigurationValues`` (already checked against the model) as a ``CodeConfig``."""
    enum = values.get("Runtime")
    runtime = RUNTIME_NAMES.get(enum) if isinstance(enum, str) else None
    if runtime is None:
        raise InvalidRequest(f"{_API}.Runtime: {enum!r} is not one of {', '.join(RUNTIME_NAMES)}")
    build = (values.get("BuildCommand") or "").strip()
    start = (values.get("StartCommand") or "").strip() or None
    if start is None and not is_node_runtime(runtime):
        raise InvalidRequest(
            f"{_API}.StartCommand: required for runtime {enum}; only Node.js runtimes"
            " default to npm start"
        )
    port_text = values.get("Port", "8080")
    port = port_number(port_text) if isinstance(port_text, str) else None
    if port is None:
        raise InvalidRequest(f"{_API}.Port: {port_text!r} is not a port number (1-65535)")
    env = dict(values.get("RuntimeEnvironmentVariables") or {})
    secrets = dict(values.get("RuntimeEnvironmentSecrets") or {})
    for member, names, limit in (
        ("RuntimeEnvironmentVariables", env, MAX_VARIABLE_NAME),
        ("RuntimeEnvironmentSecrets", secrets, MAX_SECRET_NAME),
    ):
        for name in names:
            problem = env_name_problem(name, limit=limit)
            if problem:
                raise InvalidRequest(f"{_API}.{member}: {problem}")
    for name in secrets:
        if name in env:
            raise InvalidRequest(
                f"{_API}.RuntimeEnvironmentSecrets: {name!r} is also in RuntimeEnvironmentVariables"
            )
    return CodeConfig(
        runtime=runtime,
        build=(build,) if build else (),
        command=start,
        port=port,
        env=env,
        secrets=tuple(SecretRef(name, arn) for name, arn in secrets.items()),
    )
