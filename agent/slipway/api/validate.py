"""Validate App Runner request input against botocore's ``apprunner`` service model.

The service model is the wire contract (DESIGN.md, "The control API"), so a
request is checked against it before any business rule runs: a bad request is
rejected whole, with an ``InvalidRequestException`` naming the field, and
nothing is half-written.

Messages follow AWS's validation style::

    1 validation error detected: Value 'a b' at 'ServiceName' failed to satisfy
    constraint: Member must satisfy regular expression pattern: ...

Every failed constraint is reported (``N validation errors detected: ...; ...``).
Paths are dotted and spelled as the client sent them (PascalCase), with
``[i]`` for list elements and ``.key`` for map values, e.g.
``SourceConfiguration.ImageRepository.ImageConfiguration.Port`` or
``Tags[0].Key``.

Patterns are matched against the whole value (``re.fullmatch``) with ASCII
semantics for ``\\w``/``\\d``/``\\s``, as AWS's Java validators do. ``.`` also
matches a newline: the model spells out ``[^\\x0a\\x0d]`` where newlines are
forbidden (``StartCommand``), so ``.*`` means "anything", and multi-line
environment values (PEM keys) must pass.

slipway departs from the model in two documented places (see
``PATTERN_OVERRIDES`` and ``MEMBER_PATTERN_OVERRIDES``): image identifiers may
name any registry, and ports must be 1-65535.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

import botocore.session
from botocore.model import OperationNotFoundError, Shape

from ..errors import InvalidRequest

__all__ = [
    "IMAGE_IDENTIFIER_PATTERN",
    "MEMBER_PATTERN_OVERRIDES",
    "PATTERN_OVERRIDES",
    "PORT_PATTERN",
    "operation_errors",
    "operation_names",
    "output_shape_members",
    "validate_input",
]

# --- slipway's pattern overrides ------------------------------------------------

# A registry host must be explicit, as Docker decides it: a domain with a dot,
# a host with a port, ``localhost`` or a bracketed IPv6 literal. Bare Docker Hub
# names (``nginx:latest``) are refused so that every service names the
# registry it is pulled from.
_DOMAIN_COMPONENT = r"(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])"
_PORT_SUFFIX = r"(?::[0-9]{1,5})?"
_REGISTRY = (
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})+{_PORT_SUFFIX}"
    rf"|{_DOMAIN_COMPONENT}:[0-9]{{1,5}}"
    rf"|localhost"
    rf"|\[[0-9A-Fa-f:]+\]{_PORT_SUFFIX})"
)
# Docker's repository grammar: lower-case components, single separators, so
# no uppercase, no spaces and no ``..``.
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"sha256:[0-9a-f]{64}"

#: ``host[:port]/path[:tag][@sha256:<64 hex>]``. This covers the ECR forms the
#: model allows (``<account>.dkr.ecr.<region>.amazonaws.com/repo:tag``,
#: ``public.ecr.aws/<alias>/repo:tag``, ``...@sha256:...``) and any other
#: registry, e.g. ``127.0.0.1:5000/hello:v1``. It is stricter than the model's
#: ECR pattern in one way: that pattern lets ``public.ecr.aws/.+/`` carry
#: spaces or ``..``, which no registry accepts.
IMAGE_IDENTIFIER_PATTERN = (
    rf"{_REGISTRY}/{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*(?::{_TAG})?(?:@{_DIGEST})?"
)

#: A TCP port, 1-65535, without leading zeros. The model types ``Port`` as the
#: generic ``String`` shape (pattern ``.*``), so it is overridden per member.
PORT_PATTERN = (
    r"(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
)

#: Patterns that replace the model's, keyed by shape name (every member of that
#: shape gets the override).
PATTERN_OVERRIDES: dict[str, str] = {
    # The model only allows ECR hosts; slipway pulls from any registry.
    "ImageIdentifier": IMAGE_IDENTIFIER_PATTERN,
}

#: Patterns for members whose shape is shared with unrelated members, keyed by
#: (structure shape name, member name).
MEMBER_PATTERN_OVERRIDES: dict[tuple[str, str], str] = {
    ("ImageConfiguration", "Port"): PORT_PATTERN,
    ("CodeConfigurationValues", "Port"): PORT_PATTERN,
}

# What a failed override means, in words: the override regexes are too long to
# be a useful error message.
_OVERRIDE_HINTS: dict[str, str] = {
    IMAGE_IDENTIFIER_PATTERN: (
        "an image reference host[:port]/repository[:tag][@sha256:<64 hex digits>] "
        "with an explicit registry host and a lower-case repository path"
    ),
    PORT_PATTERN: "a TCP port number from 1 to 65535",
}

# --- the model -------------------------------------------------------------------


@functools.cache
def _model() -> Any:
    """The apprunner service model; loading it takes ~50 ms, so once per process."""
    return botocore.session.get_session().get_service_model("apprunner")


@functools.cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.ASCII | re.DOTALL)


def operation_names() -> list[str]:
    """Every operation of the App Runner model, for the dispatcher's routing table."""
    return list(_model().operation_names)


def output_shape_members(operation: str) -> list[str]:
    """Top-level member names of ``operation``'s output, in model order."""
    shape = _operation(operation).output_shape
    return list(shape.members) if shape is not None else []


def operation_errors(operation: str) -> frozenset[str]:
    """The error codes the model lists for ``operation`` (its ``errors``)."""
    return frozenset(e.name for e in _operation(operation).error_shapes)


def _operation(operation: str) -> Any:
    try:
        return _model().operation_model(operation)
    except OperationNotFoundError:
        raise InvalidRequest(f"Unknown operation: {operation!r}") from None


def validate_input(operation: str, params: dict) -> None:
    """Check ``params`` (the decoded JSON body) against ``operation``'s input shape.

    Raises ``InvalidRequest`` listing every violated constraint with its field
    path; returns ``None`` when the input is well-formed.
    """
    op = _operation(operation)
    if not isinstance(params, dict):
        raise InvalidRequest(
            f"1 validation error detected: Request body must be a JSON object, "
            f"not {_json_type(params)}"
        )
    errors: list[str] = []
    shape = op.input_shape
    if shape is None:
        for name in params:
            errors.append(
                f"Value {_show(params[name], None)} at '{name}' failed to satisfy constraint: "
                f"Member is not recognized; {operation} takes no input"
            )
    else:
        _check(shape, params, "", None, errors)
    if errors:
        n = len(errors)
        noun = "error" if n == 1 else "errors"
        raise InvalidRequest(f"{n} validation {noun} detected: " + "; ".join(errors))


# --- the walk --------------------------------------------------------------------

_TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "long": "an integer",
    "float": "a number",
    "double": "a number",
    "boolean": "a boolean",
    "timestamp": "a timestamp in epoch seconds",
    "blob": "a base64 string",
    "list": "a JSON array",
    "map": "a JSON object",
    "structure": "a JSON object",
}


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a JSON array"
    if isinstance(value, dict):
        return "a JSON object"
    return type(value).__name__


def _show(value: Any, shape: Shape | None) -> str:
    """Render a value the way AWS quotes it, hiding values of sensitive shapes."""
    if shape is not None and shape.metadata.get("sensitive"):
        return "'***'"
    if value is None:
        return "null"
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int | float):
        text = str(value)
    else:
        text = json.dumps(value, separators=(",", ":"), default=str)
    if len(text) > 120:
        text = text[:117] + "..."
    return f"'{text}'"


def _fail(errors: list[str], value: Any, shape: Shape | None, path: str, problem: str) -> None:
    errors.append(
        f"Value {_show(value, shape)} at '{path}' failed to satisfy constraint: {problem}"
    )


def _type_ok(type_name: str, value: Any) -> bool:
    if type_name == "string" or type_name == "blob":
        return isinstance(value, str)
    if type_name in ("integer", "long"):
        return isinstance(value, int) and not isinstance(value, bool)
    if type_name in ("float", "double", "timestamp"):
        return isinstance(value, int | float) and not isinstance(value, bool)
    if type_name == "boolean":
        return isinstance(value, bool)
    if type_name == "list":
        return isinstance(value, list)
    if type_name in ("map", "structure"):
        return isinstance(value, dict)
    return True


def _check(
    shape: Shape,
    value: Any,
    path: str,
    pattern_override: str | None,
    errors: list[str],
) -> None:
    """Append one message per violated constraint of ``value`` at ``path``."""
    type_name = shape.type_name
    if not _type_ok(type_name, value):
        _fail(
            errors,
            value,
            shape,
            path,
            f"Member must be {_TYPE_NAMES.get(type_name, type_name)}, not {_json_type(value)}",
        )
        return
    if type_name == "structure":
        _check_structure(shape, value, path, errors)
    elif type_name == "list":
        for problem in _count_problems(shape, len(value)):
            _fail(errors, value, shape, path, problem)
        for i, item in enumerate(value):
            item_path = f"{path}[{i}]"
            if item is None:
                _fail(errors, None, shape.member, item_path, "Member must not be null")
            else:
                _check(shape.member, item, item_path, None, errors)
    elif type_name == "map":
        for problem in _count_problems(shape, len(value)):
            _fail(errors, value, shape, path, problem)
        for key, item in value.items():
            key_problems = _scalar_problems(shape.key, key, None)
            if key_problems:
                _fail(
                    errors,
                    key,
                    shape.key,
                    path,
                    "Map keys must satisfy constraint: [" + ", ".join(key_problems) + "]",
                )
            item_path = _join(path, key)
            if item is None:
                _fail(errors, None, shape.value, item_path, "Member must not be null")
            else:
                _check(shape.value, item, item_path, None, errors)
    else:
        for problem in _scalar_problems(shape, value, pattern_override):
            _fail(errors, value, shape, path, problem)


def _check_structure(shape: Shape, value: dict, path: str, errors: list[str]) -> None:
    members = shape.members
    for name, item in value.items():
        if name not in members:
            _fail(
                errors,
                item,
                None,
                _join(path, name),
                f"Member is not recognized; {shape.name} has members: {', '.join(members)}",
            )
    for name in shape.required_members:
        if value.get(name) is None:
            _fail(errors, None, None, _join(path, name), "Member must not be null")
    for name, member in members.items():
        item = value.get(name)
        if item is None:  # absent and null are the same on AWS's wire
            continue
        override = MEMBER_PATTERN_OVERRIDES.get((shape.name, name))
        _check(member, item, _join(path, name), override, errors)


def _count_problems(shape: Shape, count: int) -> list[str]:
    """Length limits of lists and maps (``min``/``max`` count elements)."""
    problems = []
    lo, hi = shape.metadata.get("min"), shape.metadata.get("max")
    if hi is not None and count > hi:
        problems.append(f"Member must have length less than or equal to {hi}")
    if lo is not None and count < lo:
        problems.append(f"Member must have length greater than or equal to {lo}")
    return problems


def _scalar_problems(shape: Shape, value: Any, pattern_override: str | None) -> list[str]:
    """Constraint failures of a scalar already known to be of the right type."""
    meta = shape.metadata
    lo, hi = meta.get("min"), meta.get("max")
    problems: list[str] = []
    if shape.type_name in ("integer", "long", "float", "double"):
        # On numbers, min/max bound the value.
        if hi is not None and value > hi:
            problems.append(f"Member must have value less than or equal to {hi}")
        if lo is not None and value < lo:
            problems.append(f"Member must have value greater than or equal to {lo}")
        return problems
    if shape.type_name != "string":
        return problems
    if not isinstance(value, str):  # map keys reach here unchecked
        return ["Member must be a string"]
    # On strings, min/max bound the length.
    if hi is not None and len(value) > hi:
        problems.append(f"Member must have length less than or equal to {hi}")
    if lo is not None and len(value) < lo:
        problems.append(f"Member must have length greater than or equal to {lo}")
    enum = shape.enum
    if enum and value not in enum:
        problems.append(f"Member must satisfy enum value set: [{', '.join(enum)}]")
    pattern = pattern_override or PATTERN_OVERRIDES.get(shape.name) or meta.get("pattern")
    if pattern is not None and _compiled(pattern).fullmatch(value) is None:
        hint = _OVERRIDE_HINTS.get(pattern)
        if hint is not None:
            problems.append(f"Member must be {hint}")
        else:
            problems.append(f"Member must satisfy regular expression pattern: {pattern}")
    return problems
