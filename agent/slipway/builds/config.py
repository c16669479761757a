"""The two sources of a code service's build and run settings, turned into ``CodeConfig``.

* ``parse_apprunner_yaml``: the repository's ``apprunner.yaml`` (ConfigurationSource
  REPOSITORY), the whole v1.0 schema of the developer guide's "Referencia del archivo de
  configuración de App Runner", plus the newer ``run.pre-run`` and ``run.secrets``.
* ``from_api_values``: the API's ``CodeConfigurationValues`` (ConfigurationSource API).

A broken file is a terminal failure of the deployment (STYLE.md #6), so every error is a
``ConfigFileError`` that names the file, the line and the dotted key, e.g.
``apprunner.yaml line 7, key run.network.port: 'abc' is not a port number (1-65535)``.
To keep line numbers, the YAML is composed into nodes (``yaml.compose`` semantics) and
walked here, never ``safe_load``-ed. Walking nodes also lets a value keep its literal
text: ``runtime-version: 3.10`` is "3.10", not the float 3.1, and ``value: yes`` is "yes".

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
* Safety: files over ``MAX_CONFIG_BYTES`` are refused unread; anchors and aliases (the
  "billion laughs" bomb) are refused at the first one, before anything expands; nesting
  deeper than ``MAX_DEPTH`` is refused before PyYAML's recursive composer gets deep.
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

__all__ = [
    "KNOWN_RUNTIMES",
    "MAX_CONFIG_BYTES",
    "RUNTIME_NAMES",
    "ConfigFileError",
    "from_api_values",
    "is_node_runtime",
    "parse_apprunner_yaml",
]

MAX_CONFIG_BYTES = 64 * 1024
#: An apprunner.yaml is at most 5 levels deep (run.env[0].name); 16 leaves room for
#: honest mistakes and keeps PyYAML's recursion far from Python's limit.
MAX_DEPTH = 16

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

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_RUNTIME_VERSION = re.compile(r"[0-9]+(?:\.[0-9]+){0,2}")
_PORT = re.compile(r"[1-9][0-9]{0,4}")
_VERSION = re.compile(r"1(?:\.0+)?")
_API = "SourceConfiguration.CodeRepository.CodeConfiguration.CodeConfigurationValues"

_TAG = "tag:yaml.org,2002:"
_NULL = _TAG + "null"
#: Scalars whose literal text is a usable string. Others (``!!binary``, ``!custom``,
#: ``!!python/...``) are refused: nothing in apprunner.yaml needs them.
_TEXT_TAGS = {_TAG + t for t in ("str", "int", "float", "bool", "timestamp")}


def is_node_runtime(runtime: str) -> bool:
    """Node.js runtimes start the app with ``npm start`` when no command is given."""
    return runtime.startswith("nodejs")


class ConfigFileError(InvalidRequest):
    """A broken apprunner.yaml; names the file, the line and the dotted key."""

    def __init__(self, filename: str, line: int | None, key: str | None, problem: str) -> None:
        where = filename
        if line is not None:
            where += f" line {line}"
        if key:
            where += f", key {key}"
        super().__init__(f"{where}: {problem}")
        self.filename = filename
        self.line = line
        self.key = key
        self.problem = problem


# --- reading the YAML -----------------------------------------------------------


class _Refused(Exception):
    def __init__(self, mark: yaml.Mark, problem: str) -> None:
        super().__init__(problem)
        self.line = mark.line + 1
        self.problem = problem


class _Loader(yaml.SafeLoader):
    """SafeLoader's composer, refusing anchors, aliases and deep nesting as it goes."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _Refused(
                event.start_mark,
                "YAML anchors and aliases (&name, *name) are not allowed in apprunner.yaml",
            )
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(event.start_mark, f"nested deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _decode(text: str | bytes, filename: str) -> str:
    """The file as text, refusing oversized files before any parsing."""
    size = len(text) if isinstance(text, bytes) else len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_CONFIG_BYTES:
        raise ConfigFileError(
            filename,
            None,
            None,
            f"file is {size} bytes; the limit is {MAX_CONFIG_BYTES} bytes",
        )
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = text[: exc.start].count(b"\n") + 1
            raise ConfigFileError(filename, line, None, "the file is not UTF-8 text") from exc
    return text.removeprefix("\ufeff")


def _compose(text: str, filename: str) -> yaml.Node | None:
    loader: _Loader | None = None
    try:
        loader = _Loader(text)  # the reader checks for unprintable characters here
        return loader.get_single_node()
    except _Refused as exc:
        raise ConfigFileError(filename, exc.line, None, exc.problem) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        context = exc.context or ""
        if context and exc.context_mark and exc.context_mark.line + 1 != line:
            context += f" (line {exc.context_mark.line + 1})"
        problem = " ".join(p for p in (context, exc.problem) if p)
        raise ConfigFileError(filename, line, None, f"invalid YAML: {problem}") from exc
    except yaml.YAMLError as exc:  # ReaderError: a character YAML does not allow
        position = getattr(exc, "position", None)
        line = text[:position].count("\n") + 1 if position is not None else None
        raise ConfigFileError(filename, line, None, f"invalid YAML: {exc}") from exc
    finally:
        if loader is not None:
            loader.dispose()


# --- walking the nodes ------------------------------------------------------------


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _describe(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if node.tag == _NULL:
        return "nothing"
    return repr(node.value)


class _Walker:
    """Reads typed values out of nodes; every failure names file, line and key."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.key_lines: dict[str, int] = {}  # dotted key -> line, for "missing key" errors

    def fail(self, node: yaml.Node | int | None, key: str | None, problem: str) -> ConfigFileError:
        line = _line(node) if isinstance(node, yaml.Node) else node
        return ConfigFileError(self.filename, line, key, problem)

    def mapping(
        self,
        node: yaml.Node,
        path: str,
        known: tuple[str, ...],
        required: tuple[str, ...] = (),
    ) -> dict[str, yaml.Node]:
        """The mapping's values by key: no unknown, duplicate or missing keys."""
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, path or None, f"expected a mapping, got {_describe(node)}")
        out: dict[str, yaml.Node] = {}
        lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _NULL:
                raise self.fail(key_node, path or None, f"{_describe(key_node)} is not a key name")
            key = key_node.value
            dotted = f"{path}.{key}" if path else key
            if key not in known:
                raise self.fail(key_node, dotted, _unknown(key, known))
            if key in out:
                raise self.fail(
                    key_node, dotted, f"duplicate key '{key}' (first given at line {lines[key]})"
                )
            out[key] = value_node
            lines[key] = self.key_lines[dotted] = _line(key_node)
        for key in required:
            if key not in out:
                dotted = f"{path}.{key}" if path else key
                line = self.key_lines.get(path, _line(node))
                raise self.fail(line, dotted, f"missing required key '{key}'")
        return out

    def text(self, node: yaml.Node, key: str, *, allow_empty: bool = False) -> str:
        """A scalar's literal text, whatever YAML would have typed it as."""
        if not isinstance(node, yaml.ScalarNode) or node.tag == _NULL:
            hint = ""
            if isinstance(node, yaml.MappingNode) and len(node.value) == 1:
                hint = "; quote the value if it contains ': '"
            if node.tag == _NULL and allow_empty:
                hint = '; write "" for an empty string'
            raise self.fail(node, key, f"expected a string, got {_describe(node)}{hint}")
        if node.tag not in _TEXT_TAGS:
            raise self.fail(node, key, f"YAML tag {node.tag} is not allowed here")
        if not allow_empty and not node.value.strip():
            raise self.fail(node, key, "must not be empty")
        return node.value

    def command(self, node: yaml.Node, key: str) -> str:
        command = self.text(node, key).strip()
        if "\n" in command or "\r" in command:
            raise self.fail(
                node,
                key,
                "a command is one shell line; split it into list items or join with &&",
            )
        return command

    def commands(self, node: yaml.Node, key: str, *, required: bool = False) -> tuple[str, ...]:
        if isinstance(node, yaml.ScalarNode) and node.tag != _NULL:
            raise self.fail(
                node,
                key,
                f"expected a list of commands, got {_describe(node)}; write it as a list item:"
                f"  - {node.value.strip()}",
            )
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, key, f"expected a list of commands, got {_describe(node)}")
        if required and not node.value:
            raise self.fail(node, key, "needs at least one command")
        return tuple(self.command(item, f"{key}[{i}]") for i, item in enumerate(node.value))

    def env_name(self, node: yaml.Node, key: str) -> str:
        name = self.text(node, key)
        if not _ENV_NAME.fullmatch(name):
            raise self.fail(node, key, f"{name!r} is not an environment variable name {_ENV_RULE}")
        return name

    def pairs(self, node: yaml.Node, key: str, value_key: str) -> list[tuple[str, str, int]]:
        """A list of ``{name, <value_key>}`` as (name, value, line), names unique."""
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(
                node, key, f"expected a list of name/{value_key} pairs, got {_describe(node)}"
            )
        out: list[tuple[str, str, int]] = []
        seen: dict[str, int] = {}
        for i, item in enumerate(node.value):
            path = f"{key}[{i}]"
            fields = self.mapping(item, path, ("name", value_key), ("name", value_key))
            name = self.env_name(fields["name"], f"{path}.name")
            value = self.text(fields[value_key], f"{path}.{value_key}", allow_empty=True)
            if name in seen:
                raise self.fail(
                    fields["name"], f"{path}.name", f"duplicate name '{name}' (line {seen[name]})"
                )
            seen[name] = _line(item)
            out.append((name, value, _line(item)))
        return out

    def port(self, node: yaml.Node, key: str) -> int:
        if isinstance(node, yaml.ScalarNode) and node.tag in (_TAG + "int", _TAG + "str"):
            number = _port_number(node.value)
            if number is not None:
                return number
        shown = repr(node.value) if isinstance(node, yaml.ScalarNode) else _describe(node)
        raise self.fail(node, key, f"{shown} is not a port number (1-65535)")


_ENV_RULE = "(letters, digits and _, not starting with a digit)"


def _unknown(key: str, known: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key.lower(), known, n=1, cutoff=0.6)
    if close:
        return f"unknown key '{key}'; did you mean '{close[0]}'?"
    return f"unknown key '{key}'; expected one of: {', '.join(known)}"


def _port_number(text: str) -> int | None:
    """1-65535 in plain decimal: no sign, spaces, leading zeros (YAML 1.1 octal) or 0x."""
    if _PORT.fullmatch(text) and int(text) <= 65535:
        return int(text)
    return None


# --- apprunner.yaml ------------------------------------------------------------------


def parse_apprunner_yaml(text: str | bytes, filename: str = "apprunner.yaml") -> CodeConfig:
    """Parse and validate an apprunner.yaml; raise ``ConfigFileError`` on any flaw."""
    source = _decode(text, filename)
    if not source.strip():
        raise ConfigFileError(filename, None, None, "the file is empty")
    root = _compose(source, filename)
    if root is None:
        raise ConfigFileError(filename, None, None, "the file is empty (only comments)")
    w = _Walker(filename)
    if not isinstance(root, yaml.MappingNode):
        raise w.fail(root, None, f"expected a mapping of keys at the top, got {_describe(root)}")
    top = w.mapping(root, "", ("version", "runtime", "build", "run"), ("version", "runtime", "run"))

    version = top["version"]
    if not (
        isinstance(version, yaml.ScalarNode)
        and version.tag in (_TAG + "float", _TAG + "int", _TAG + "str")
        and _VERSION.fullmatch(version.value.strip())
    ):
        raise w.fail(version, "version", f"unsupported version {_describe(version)}; use 1.0")

    runtime = w.text(top["runtime"], "runtime").strip()
    if runtime not in KNOWN_RUNTIMES:
        close = difflib.get_close_matches(runtime.lower(), KNOWN_RUNTIMES, n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise w.fail(
            top["runtime"],
            "runtime",
            f"unknown runtime {runtime!r}; {hint}known runtimes: {', '.join(KNOWN_RUNTIMES)}",
        )

    fields: dict[str, Any] = {"runtime": runtime}
    if "build" in top:
        fields.update(_build_section(w, top["build"]))
    fields.update(_run_section(w, top["run"], runtime))
    return CodeConfig(**fields)


def _build_section(w: _Walker, node: yaml.Node) -> dict[str, Any]:
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


def _run_section(w: _Walker, node: yaml.Node, runtime: str) -> dict[str, Any]:
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
        if "port" in network:
            out["port"] = w.port(network["port"], "run.network.port")
        if "env" in network:
            out["port_env"] = w.env_name(network["env"], "run.network.env")
    env = w.pairs(run["env"], "run.env", "value") if "env" in run else []
    secrets = w.pairs(run["secrets"], "run.secrets", "value-from") if "secrets" in run else []
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
    port = _port_number(port_text) if isinstance(port_text, str) else None
    if port is None:
        raise InvalidRequest(f"{_API}.Port: {port_text!r} is not a port number (1-65535)")
    env = dict(values.get("RuntimeEnvironmentVariables") or {})
    secrets = dict(values.get("RuntimeEnvironmentSecrets") or {})
    for member, names in (
        ("RuntimeEnvironmentVariables", env),
        ("RuntimeEnvironmentSecrets", secrets),
    ):
        for name in names:
            if not _ENV_NAME.fullmatch(name):
                raise InvalidRequest(
                    f"{_API}.{member}: {name!r} is not an environment variable name {_ENV_RULE}"
                )
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
