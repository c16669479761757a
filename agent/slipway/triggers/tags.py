"""Which tag is the newest one a ``slipway:track-tags`` pattern allows.

A pattern is one of two kinds, told apart by its first character:

- a **semver range** starts with ``^ ~ > < =`` or a digit: ``^1.2``, ``~1.2.3``,
  ``>=1.0 <2``, ``1.x``, ``1.2.*``, ``1.2 - 1.4``, alternatives joined by ``||``
  (npm's grammar). Only tags that read as versions count (``1.2.3``, ``v1.2.3``, also
  ``1.2`` and ``1``, whose missing parts are 0). A pre-release (``1.3.0-rc.1``) counts
  only when a comparator of the same alternative names a pre-release of the same
  ``major.minor.patch``, as npm does: ``^1.2`` never deploys a release candidate,
  ``>=1.3.0-rc.1 <2`` deploys ``1.3.0-rc.2``.
- anything else is a **glob** (``v*``, ``release-*``, ``*``; ``fnmatch``, case
  sensitive), and every tag it matches counts, pre-releases included: a glob says
  which names, a range says which versions.

The newest of the matching tags is the highest version. A glob's name is read as a
version as it is (a leading ``v`` allowed: ``v1.*`` reads ``v1.10.0``), or else after
removing the glob's literal text before its first and after its last wildcard
(``release-*`` reads ``release-1.2.10`` as ``1.2.10``); names that read as versions rank
above names that do not, and names that do not are ordered lexicographically
(``build-20240105`` after ``build-20231231``). Between equal versions
the more precise name wins (``1.2.0`` over ``1.2``), then the lexicographically last.

``build/runtimes.py`` has a range matcher for ``engines.node``, but it drops pre-release
parts (``satisfies("1.3.0-rc.1", "^1.2")`` is true there), so this module has its own.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import InvalidRequest, SlipwayError

__all__ = [
    "NoMatchingTag",
    "Version",
    "check_pattern",
    "is_range",
    "matches",
    "newest_matching",
    "parse_version",
]

_RANGE_START = frozenset("^~><=0123456789")
_VERSION = re.compile(
    r"v?(0|[1-9]\d*)(?:\.(0|[1-9]\d*))?(?:\.(0|[1-9]\d*))?"
    r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z.-]+)?"
)
_PARTIAL = re.compile(
    r"v?(\d+|[xX*])(?:\.(\d+|[xX*]))?(?:\.(\d+|[xX*]))?"
    r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z.-]+)?"
)
_OPERATOR = re.compile(r"(\^|~>?|>=|<=|>|<|=)?(.*)")
_GLOB_WILDCARDS = "*?["
_SHOWN = 5


class NoMatchingTag(SlipwayError):
    """The source has no tag the pattern allows (yet): terminal until someone tags."""

    terminal = True


@dataclass(frozen=True)
class Version:
    """A semantic version; ordering is semver precedence (build metadata ignored)."""

    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[int, int, int, int, tuple[tuple[int, int | str], ...]]:
        """Sort key: a release sorts above its pre-releases; numeric identifiers sort
        numerically and below alphanumeric ones; a longer pre-release above its prefix."""
        pre = tuple((0, int(p)) if p.isdigit() else (1, p) for p in self.prerelease)
        return (self.major, self.minor, self.patch, 0 if self.prerelease else 1, pre)

    @property
    def core(self) -> tuple[int, int, int]:
        return (self.major, self.minor, self.patch)


def parse_version(text: str) -> tuple[Version, int] | None:
    """``text`` as a version and how many numeric parts it spelled out (1-3), or None.

    A pre-release needs all three parts (``1.2-rc`` is not a version).
    """
    match = _VERSION.fullmatch(text)
    if not match:
        return None
    major, minor, patch, pre = match.groups()
    if pre is not None and patch is None:
        return None
    parts = 1 + (minor is not None) + (patch is not None)
    version = Version(
        int(major), int(minor or 0), int(patch or 0), tuple(pre.split(".")) if pre else ()
    )
    return version, parts


def is_range(pattern: str) -> bool:
    """A semver range starts with an operator or a digit; anything else is a glob."""
    return bool(pattern) and pattern.lstrip()[:1] in _RANGE_START


def check_pattern(pattern: str) -> None:
    """Refuse a pattern that is neither a usable glob nor a readable range, up front."""
    if not pattern or not pattern.strip():
        raise InvalidRequest("slipway:track-tags is empty; use a glob like v* or a range like ^1.2")
    if is_range(pattern):
        _Range.parse(pattern)


def matches(tag: str, pattern: str) -> bool:
    """Whether ``tag`` is one ``pattern`` allows (see the module docstring)."""
    if is_range(pattern):
        parsed = parse_version(tag)
        return parsed is not None and _Range.parse(pattern).contains(parsed[0])
    return fnmatch.fnmatchcase(tag, pattern)


def newest_matching(tags: Iterable[str], pattern: str) -> str | None:
    """The newest tag ``pattern`` allows, or None when none does.

    Raises InvalidRequest for a range that cannot be read.
    """
    check_pattern(pattern)
    if is_range(pattern):
        wanted = _Range.parse(pattern)
        best: tuple[object, ...] | None = None
        chosen = None
        for tag in tags:
            parsed = parse_version(tag)
            if parsed is None or not wanted.contains(parsed[0]):
                continue
            rank = (parsed[0].key, parsed[1], tag)
            if best is None or rank > best:
                best, chosen = rank, tag
        return chosen
    strip = _glob_literals(pattern)
    best = None
    chosen = None
    for tag in tags:
        if not fnmatch.fnmatchcase(tag, pattern):
            continue
        parsed = parse_version(tag) or parse_version(_core_of(tag, *strip))
        rank = (1, parsed[0].key, parsed[1], tag) if parsed else (0, (), 0, tag)
        if best is None or rank > best:
            best, chosen = rank, tag
    return chosen


def no_matching_tag(where: str, tags: Iterable[str], pattern: str) -> NoMatchingTag:
    """The error for a source without a matching tag, naming a few tags it does have."""
    names = sorted(tags)
    if not names:
        have = "it has no tags"
    else:
        have = "its tags include " + ", ".join(names[-_SHOWN:])
        if len(names) > _SHOWN:
            have += f" ({len(names)} in all)"
    return NoMatchingTag(f"no tag of {where} matches {pattern!r}; {have}")


# --- globs ---------------------------------------------------------------------------


def _glob_literals(pattern: str) -> tuple[str, str]:
    """The glob's literal text before its first wildcard and after its last one."""
    first = min((i for i in (pattern.find(c) for c in _GLOB_WILDCARDS) if i >= 0), default=-1)
    if first < 0:
        return "", ""
    last = max(pattern.rfind("*"), pattern.rfind("?"), pattern.rfind("]"))
    return pattern[:first], pattern[last + 1 :]


def _core_of(tag: str, prefix: str, suffix: str) -> str:
    if prefix and tag.startswith(prefix):
        tag = tag[len(prefix) :]
    if suffix and tag.endswith(suffix) and len(tag) > len(suffix):
        tag = tag[: -len(suffix)]
    return tag


# --- ranges --------------------------------------------------------------------------

_Comparator = tuple[str, Version]
_Partial = tuple[int | None, int | None, int | None, tuple[str, ...]]
_CHECKS = {
    "==": lambda a, b: a == b,
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
}


@dataclass(frozen=True)
class _Range:
    """Alternatives (``||``), each a set of comparators that must all hold."""

    alternatives: tuple[tuple[_Comparator, ...], ...]

    @classmethod
    def parse(cls, text: str) -> _Range:
        try:
            spec = re.sub(r"(<=|>=|<|>|=|\^|~>?)\s+", r"\1", text.strip())  # ">= 1" is ">=1"
            alternatives = []
            for part in spec.split("||"):
                part = part.strip()
                if not part:
                    raise ValueError("an alternative is empty")
                alternatives.append(tuple(_set_comparators(part)))
            return cls(tuple(alternatives))
        except ValueError as exc:
            raise InvalidRequest(
                f"slipway:track-tags {text!r} is not a semver range ({exc});"
                " ranges look like ^1.2, ~1.2.3, >=1.0 <2, 1.x; globs like v* or release-*"
            ) from exc

    def contains(self, version: Version) -> bool:
        have = version.key
        for comparators in self.alternatives:
            if not all(_CHECKS[op](have, bound.key) for op, bound in comparators):
                continue
            # npm: a pre-release only where the range names one of the same x.y.z
            if version.prerelease and not any(
                bound.prerelease and bound.core == version.core for _, bound in comparators
            ):
                continue
            return True
        return False


def _partial(text: str) -> _Partial:
    match = _PARTIAL.fullmatch(text)
    if not match:
        raise ValueError(f"{text!r} is not a version")
    numbers: list[int | None] = []
    for group in match.groups()[:3]:
        if group is None or group in "xX*" or (numbers and numbers[-1] is None):
            numbers.append(None)
        else:
            numbers.append(int(group))
    pre = match.group(4)
    if pre and numbers[2] is None:
        raise ValueError(f"{text!r} has a pre-release but no patch version")
    return numbers[0], numbers[1], numbers[2], tuple(pre.split(".")) if pre else ()


def _floor(p: _Partial) -> Version:
    return Version(p[0] or 0, p[1] or 0, p[2] or 0, p[3])


def _ceiling(p: _Partial) -> Version:
    """The exclusive upper bound of a partial version: 1 -> 2.0.0, 1.2 -> 1.3.0."""
    major = p[0] or 0
    return Version(major + 1, 0, 0) if p[1] is None else Version(major, p[1] + 1, 0)


def _comparators(op: str, p: _Partial) -> list[_Comparator]:
    """One range token as plain comparisons; [] matches every release."""
    if p[0] is None:  # "*", "x", ">=*": anything; "<*", ">*": nothing
        return [("<", Version(0, 0, 0))] if op in ("<", ">") else []
    full = p[2] is not None
    low = _floor(p)
    if op in ("", "="):
        return [("==", low)] if full else [(">=", low), ("<", _ceiling(p))]
    if op == ">=":
        return [(">=", low)]
    if op == ">":
        return [(">", low)] if full else [(">=", _ceiling(p))]
    if op == "<":
        return [("<", low)]
    if op == "<=":
        return [("<=", low)] if full else [("<", _ceiling(p))]
    if op in ("~", "~>"):  # patch updates (~1.2.3, ~1.2) or minor ones (~1)
        return [(">=", low), ("<", _ceiling((p[0], p[1], None, ())))]
    if op == "^":  # no change to the left-most non-zero part
        if low.major > 0 or p[1] is None:
            upper = Version(low.major + 1, 0, 0)
        elif low.minor > 0 or p[2] is None:
            upper = Version(0, low.minor + 1, 0)
        else:
            upper = Version(0, 0, low.patch + 1)
        return [(">=", low), ("<", upper)]
    raise ValueError(f"unknown operator {op!r}")


def _set_comparators(part: str) -> list[_Comparator]:
    hyphen = re.fullmatch(r"(\S+)\s+-\s+(\S+)", part)
    if hyphen:
        return _comparators(">=", _partial(hyphen[1])) + _comparators("<=", _partial(hyphen[2]))
    out: list[_Comparator] = []
    for token in part.split():
        match = _OPERATOR.fullmatch(token)
        assert match is not None  # the pattern matches any token
        if not match[2]:
            raise ValueError(f"{token!r} has no version")
        out += _comparators(match[1] or "", _partial(match[2]))
    return out
