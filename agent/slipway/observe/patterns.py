"""EventBridge event patterns: which events a notification target wants.

A pattern has the shape of the events it matches. Each named field must be in the
event (AND across fields); a leaf holds a list of accepted values (OR within the
list); nested objects descend into the event. A value in the list is a JSON scalar,
matched exactly (strings character by character, ``null`` only by ``null``, numbers
by type and value, so ``300`` is not ``300.0``), or a matcher object:

    {"prefix": "us-"}  {"suffix": ".png"}  {"equals-ignore-case": "running"}
    {"prefix": {"equals-ignore-case": "dep"}}   {"wildcard": "Deploy*Failed"}
    {"anything-but": "RUNNING" | ["A", "B"] | {"prefix"|"suffix"|"equals-ignore-case"|
                     "wildcard": ...}}
    {"numeric": [">", 0, "<=", 5]}   {"exists": true | false}   {"cidr": "10.0.0.0/24"}

and ``{"$or": [pattern, pattern, ...]}`` at any object level. When the event's
value is a list, the field matches if any element does. Only ``{"exists": false}``
matches a field the event lacks, or one that is an object rather than a leaf.

Patterns are checked once, when a target is added (``validate_pattern``), so
``matches`` can assume a well-formed pattern.
"""

from __future__ import annotations

import ipaddress
import operator
import re
from typing import Any

from ..errors import InvalidRequest

__all__ = ["matches", "validate_pattern"]

_NUMERIC_LIMIT = 1e9  # EventBridge matches numbers in [-1e9, 1e9]
_LOWER = {">", ">="}
_UPPER = {"<", "<="}
_STRING_MATCHERS = {"prefix", "suffix", "equals-ignore-case", "wildcard"}
_MISSING = object()
_OPS = {"=": operator.eq, ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}


# -- validation ------------------------------------------------------------------


def validate_pattern(obj: Any, path: str = "pattern") -> None:
    """Raise InvalidRequest naming the first problem and where it is in the pattern."""
    if not isinstance(obj, dict):
        raise InvalidRequest(f"{path}: expected a JSON object of fields to match")
    if not obj:
        raise InvalidRequest(
            f"{path}: must name at least one field"
            + (' (every event: {"source": ["aws.apprunner"]})' if path == "pattern" else "")
        )
    for key, value in obj.items():
        where = f"{path}.{key}"
        if key == "$or":
            _validate_or(value, where)
        elif isinstance(value, dict):
            validate_pattern(value, where)
        elif isinstance(value, list):
            if not value:
                raise InvalidRequest(f"{where}: a list of values must not be empty")
            for index, item in enumerate(value):
                _validate_value(item, f"{where}[{index}]")
        else:
            raise InvalidRequest(f"{where}: expected a list of values or matchers")


def _validate_or(value: Any, where: str) -> None:
    if not isinstance(value, list) or len(value) < 2:
        raise InvalidRequest(f"{where}: expected a list of at least two patterns")
    for index, item in enumerate(value):
        validate_pattern(item, f"{where}[{index}]")


def _validate_value(item: Any, where: str) -> None:
    if item is None or isinstance(item, str | bool):
        return
    if isinstance(item, int | float):
        return
    if isinstance(item, list):
        raise InvalidRequest(f"{where}: lists cannot nest; put the values in one list")
    if not isinstance(item, dict) or len(item) != 1:
        raise InvalidRequest(
            f"{where}: expected a JSON scalar or an object with exactly one matcher"
        )
    ((name, arg),) = item.items()
    where = f"{where}.{name}"
    if name in _STRING_MATCHERS:
        _validate_string_matcher(name, arg, where)
    elif name == "anything-but":
        _validate_anything_but(arg, where)
    elif name == "numeric":
        _validate_numeric(arg, where)
    elif name == "exists":
        if not isinstance(arg, bool):
            raise InvalidRequest(f"{where}: expected true or false")
    elif name == "cidr":
        if not isinstance(arg, str):
            raise InvalidRequest(f"{where}: expected a CIDR block such as 10.0.0.0/24")
        try:
            ipaddress.ip_network(arg, strict=False)
        except ValueError as exc:
            raise InvalidRequest(f"{where}: {arg!r} is not a CIDR block: {exc}") from exc
    else:
        known = sorted(_STRING_MATCHERS | {"anything-but", "numeric", "exists", "cidr"})
        raise InvalidRequest(f"{where}: unknown matcher; expected one of {', '.join(known)}")


def _validate_string_matcher(name: str, arg: Any, where: str) -> None:
    if name in ("prefix", "suffix") and isinstance(arg, dict):
        if set(arg) != {"equals-ignore-case"} or not isinstance(arg["equals-ignore-case"], str):
            raise InvalidRequest(
                f'{where}: expected a string or {{"equals-ignore-case": "<string>"}}'
            )
        return
    if not isinstance(arg, str):
        raise InvalidRequest(f"{where}: expected a string")
    if name == "wildcard" and "**" in arg:
        raise InvalidRequest(f"{where}: consecutive wildcard characters are not allowed")


def _validate_anything_but(arg: Any, where: str) -> None:
    if isinstance(arg, dict):
        if len(arg) != 1 or next(iter(arg)) not in _STRING_MATCHERS:
            raise InvalidRequest(
                f"{where}: an object must hold one of prefix, suffix, equals-ignore-case, wildcard"
            )
        ((name, inner),) = arg.items()
        if name in ("prefix", "suffix") and isinstance(inner, dict):
            raise InvalidRequest(f"{where}.{name}: expected a string")
        _validate_string_matcher(name, inner, f"{where}.{name}")
        return
    values = arg if isinstance(arg, list) else [arg]
    if not values:
        raise InvalidRequest(f"{where}: the list of excluded values must not be empty")
    if all(isinstance(v, str) for v in values):
        return
    if all(_is_number(v) for v in values):
        return
    raise InvalidRequest(f"{where}: expected a string, a number, or a list of only one of those")


def _validate_numeric(arg: Any, where: str) -> None:
    shape = 'expected [op, number] or [">"|">=", low, "<"|"<=", high]'
    if not isinstance(arg, list) or len(arg) not in (2, 4):
        raise InvalidRequest(f"{where}: {shape}")
    ops, numbers = arg[::2], arg[1::2]
    for number in numbers:
        if not _is_number(number):
            raise InvalidRequest(f"{where}: {number!r} is not a number; {shape}")
        if abs(number) > _NUMERIC_LIMIT:
            raise InvalidRequest(f"{where}: {number} is outside -1e9..1e9")
    if len(arg) == 2:
        if ops[0] not in _LOWER | _UPPER | {"="}:
            raise InvalidRequest(f"{where}: unknown operator {ops[0]!r}; {shape}")
        return
    if ops[0] not in _LOWER or ops[1] not in _UPPER:
        raise InvalidRequest(f"{where}: a range needs a lower bound then an upper; {shape}")
    if numbers[0] >= numbers[1]:
        raise InvalidRequest(f"{where}: the lower bound must be below the upper")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# -- matching --------------------------------------------------------------------


def matches(pattern: dict[str, Any], event: Any) -> bool:
    """Whether ``event`` (a decoded JSON object) matches a validated ``pattern``."""
    if not isinstance(event, dict):
        return False
    for key, wanted in pattern.items():
        if key == "$or":
            if not any(matches(branch, event) for branch in wanted):
                return False
            continue
        value = event.get(key, _MISSING)
        if isinstance(wanted, dict):
            if not _matches_object(wanted, value):
                return False
        elif not _matches_leaf(wanted, value):
            return False
    return True


def _matches_object(pattern: dict[str, Any], value: Any) -> bool:
    """A nested pattern: the event's value is an object, or a list holding one that
    matches (all fields from the same element, as EventBridge requires)."""
    if isinstance(value, list):
        return any(_matches_object(pattern, item) for item in value)
    if isinstance(value, dict):
        return matches(pattern, value)
    # Only "does not exist" leaves can be satisfied by a missing object.
    return matches(pattern, {})


def _matches_leaf(wanted: list[Any], value: Any) -> bool:
    values = value if isinstance(value, list) else [value]
    leaves = [v for v in values if v is not _MISSING and not isinstance(v, dict | list)]
    for item in wanted:
        if isinstance(item, dict) and "exists" in item:
            if bool(leaves) == item["exists"]:
                return True
            continue
        if any(_matches_value(item, leaf) for leaf in leaves):
            return True
    return False


def _matches_value(item: Any, value: Any) -> bool:
    if not isinstance(item, dict):
        return _same(item, value)
    ((name, arg),) = item.items()
    if name in _STRING_MATCHERS:
        return isinstance(value, str) and _string_match(name, arg, value)
    if name == "anything-but":
        if isinstance(arg, dict):
            ((inner, inner_arg),) = arg.items()
            return isinstance(value, str) and not _string_match(inner, inner_arg, value)
        excluded = arg if isinstance(arg, list) else [arg]
        return not any(_same(x, value) for x in excluded)
    if name == "numeric":
        return _is_number(value) and _numeric(arg, value)
    if name == "cidr":
        return _in_cidr(arg, value)
    return False


def _same(expected: Any, value: Any) -> bool:
    """JSON equality as EventBridge sees it: no coercion between types."""
    if expected is None or value is None:
        return expected is None and value is None
    return type(expected) is type(value) and expected == value


def _string_match(name: str, arg: Any, value: str) -> bool:
    if isinstance(arg, dict):  # {"prefix": {"equals-ignore-case": ...}}
        arg, value = arg["equals-ignore-case"].casefold(), value.casefold()
    if name == "prefix":
        return value.startswith(arg)
    if name == "suffix":
        return value.endswith(arg)
    if name == "equals-ignore-case":
        return value.casefold() == arg.casefold()
    # wildcard: "*" is any run of characters, "\\*" a literal star.
    parts = re.split(r"(?<!\\)\*", arg)
    regex = ".*".join(re.escape(p.replace("\\*", "*")) for p in parts)
    return re.fullmatch(regex, value, flags=re.DOTALL) is not None


def _numeric(arg: list[Any], value: float) -> bool:
    return all(_OPS[op](value, bound) for op, bound in zip(arg[::2], arg[1::2], strict=True))


def _in_cidr(block: str, value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return ipaddress.ip_address(value) in ipaddress.ip_network(block, strict=False)
    except ValueError:
        return False
