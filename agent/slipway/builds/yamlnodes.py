"""Reading apprunner.yaml as YAML nodes, so that every error names the file, the line
and the dotted key (``ConfigFileError``), and a value keeps its literal text:
``runtime-version: 3.10`` is "3.10", not the float 3.1, and ``value: yes`` is "yes".

The YAML is composed into nodes (``yaml.compose`` semantics) and walked by ``Walker``,
never ``safe_load``-ed. Safety: files over ``MAX_CONFIG_BYTES`` are refused unread;
anchors and aliases (the "billion laughs" bomb) are refused at the first one, before
anything expands; nesting deeper than ``MAX_DEPTH`` is refused before PyYAML's recursive
composer gets deep. What the keys mean is ``config.py``'s business.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

import yaml

from ..errors import InvalidRequest
from .envnames import SHELL_NAME, SHELL_RULE, env_name_problem

__all__ = [
    "MAX_CONFIG_BYTES",
    "MAX_DEPTH",
    "NULL",
    "TAG",
    "ConfigFileError",
    "Walker",
    "compose",
    "decode",
    "describe",
    "is_null",
    "line_of",
    "port_number",
    "unknown_key",
]

MAX_CONFIG_BYTES = 64 * 1024
#: An apprunner.yaml is at most 5 levels deep (run.env[0].name); 16 leaves room for
#: honest mistakes and keeps PyYAML's recursion far from Python's limit.
MAX_DEPTH = 16

TAG = "tag:yaml.org,2002:"
NULL = TAG + "null"
#: Scalars whose literal text is a usable string. Others (``!!binary``, ``!custom``,
#: ``!!python/...``) are refused: nothing in apprunner.yaml needs them.
_TEXT_TAGS = {TAG + t for t in ("str", "int", "float", "bool", "timestamp")}
_PORT = re.compile(r"[1-9][0-9]{0,4}")


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


def decode(text: str | bytes, filename: str) -> str:
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


def compose(text: str, filename: str) -> yaml.Node | None:
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


def line_of(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def is_null(node: yaml.Node) -> bool:
    """``key:`` with nothing after it, or ``~`` / ``null``."""
    return isinstance(node, yaml.ScalarNode) and node.tag == NULL


def describe(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if node.tag == NULL:
        return "nothing"
    return repr(node.value)


class Walker:
    """Reads typed values out of nodes; every failure names file, line and key."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.key_lines: dict[str, int] = {}  # dotted key -> line, for "missing key" errors

    def fail(self, node: yaml.Node | int | None, key: str | None, problem: str) -> ConfigFileError:
        line = line_of(node) if isinstance(node, yaml.Node) else node
        return ConfigFileError(self.filename, line, key, problem)

    def mapping(
        self,
        node: yaml.Node,
        path: str,
        known: tuple[str, ...],
        required: tuple[str, ...] = (),
    ) -> dict[str, yaml.Node]:
        """The mapping's values by key: no unknown, duplicate or missing keys. An optional
        key with no value (``network:`` alone) is left out, as if not written."""
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, path or None, f"expected a mapping, got {describe(node)}")
        out: dict[str, yaml.Node] = {}
        lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == NULL:
                raise self.fail(key_node, path or None, f"{describe(key_node)} is not a key name")
            key = key_node.value
            dotted = f"{path}.{key}" if path else key
            if key not in known:
                raise self.fail(key_node, dotted, unknown_key(key, known))
            if key in lines:
                raise self.fail(
                    key_node, dotted, f"duplicate key '{key}' (first given at line {lines[key]})"
                )
            lines[key] = self.key_lines[dotted] = line_of(key_node)
            if key in required or not is_null(value_node):
                out[key] = value_node
        for key in required:
            if key not in out:
                dotted = f"{path}.{key}" if path else key
                line = self.key_lines.get(path, line_of(node))
                raise self.fail(line, dotted, f"missing required key '{key}'")
        return out

    def text(self, node: yaml.Node, key: str, *, allow_empty: bool = False) -> str:
        """A scalar's literal text, whatever YAML would have typed it as."""
        if not isinstance(node, yaml.ScalarNode) or node.tag == NULL:
            hint = ""
            if isinstance(node, yaml.MappingNode) and len(node.value) == 1:
                hint = "; quote the value if it contains ': '"
            if node.tag == NULL and allow_empty:
                hint = '; write "" for an empty string'
            raise self.fail(node, key, f"expected a string, got {describe(node)}{hint}")
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
        if isinstance(node, yaml.ScalarNode) and node.tag != NULL:
            raise self.fail(
                node,
                key,
                f"expected a list of commands, got {describe(node)}; write it as a list item:"
                f"  - {node.value.strip()}",
            )
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, key, f"expected a list of commands, got {describe(node)}")
        if required and not node.value:
            raise self.fail(node, key, "needs at least one command")
        return tuple(self.command(item, f"{key}[{i}]") for i, item in enumerate(node.value))

    def shell_name(self, node: yaml.Node, key: str) -> str:
        """A name a build's shell reads (build.env, run.network.env)."""
        name = self.text(node, key)
        if not SHELL_NAME.fullmatch(name):
            raise self.fail(node, key, f"{name!r} is not an environment variable name {SHELL_RULE}")
        return name

    def env_name(self, node: yaml.Node, key: str, limit: int) -> str:
        """A name of the app's environment (run.env, run.secrets): App Runner's rule."""
        name = self.text(node, key, allow_empty=True)
        problem = env_name_problem(name, limit=limit)
        if problem:
            raise self.fail(node, key, problem)
        return name

    def pairs(
        self, node: yaml.Node, key: str, value_key: str, name_limit: int | None = None
    ) -> list[tuple[str, str, int]]:
        """A list of ``{name, <value_key>}`` as (name, value, line), names unique. Names
        follow App Runner's rule up to ``name_limit`` characters, or a shell's if None."""
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(
                node, key, f"expected a list of name/{value_key} pairs, got {describe(node)}"
            )
        out: list[tuple[str, str, int]] = []
        seen: dict[str, int] = {}
        for i, item in enumerate(node.value):
            path = f"{key}[{i}]"
            fields = self.mapping(item, path, ("name", value_key), ("name", value_key))
            name = (
                self.shell_name(fields["name"], f"{path}.name")
                if name_limit is None
                else self.env_name(fields["name"], f"{path}.name", name_limit)
            )
            value = self.text(fields[value_key], f"{path}.{value_key}", allow_empty=True)
            if name in seen:
                raise self.fail(
                    fields["name"], f"{path}.name", f"duplicate name '{name}' (line {seen[name]})"
                )
            seen[name] = line_of(item)
            out.append((name, value, line_of(item)))
        return out

    def port(self, node: yaml.Node, key: str) -> int:
        if isinstance(node, yaml.ScalarNode) and node.tag in (TAG + "int", TAG + "str"):
            number = port_number(node.value)
            if number is not None:
                return number
        shown = repr(node.value) if isinstance(node, yaml.ScalarNode) else describe(node)
        raise self.fail(node, key, f"{shown} is not a port number (1-65535)")


def unknown_key(key: str, known: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key.lower(), known, n=1, cutoff=0.6)
    if close:
        return f"unknown key '{key}'; did you mean '{close[0]}'?"
    return f"unknown key '{key}'; expected one of: {', '.join(known)}"


def port_number(text: str) -> int | None:
    """1-65535 in plain decimal: no sign, spaces, leading zeros (YAML 1.1 octal) or 0x."""
    if _PORT.fullmatch(text) and int(text) <= 65535:
        return int(text)
    return None
