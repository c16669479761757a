"""Semantic versions and npm-style ranges; pure, no dependency.

``Version`` orders by semver precedence. ``Range.parse`` reads npm's range grammar:
alternatives joined by ``||``, space-joined comparator sets, ``a - b``, ``^``, ``~``,
``>=``, ``>``, ``<=``, ``<``, ``=``, exact and partial versions, ``x``/``*`` wildcards.
A pre-release version is in a range only when a comparator of the same alternative names
a pre-release of the same ``major.minor.patch`` (npm's rule: ``^1.2`` never matches
``1.3.0-rc.1``).

Two readings, for two callers:

- strict (``slipway:track-tags``, ``triggers/tags.py``): pre-release parts count and must
  be well formed, after a patch version; an empty alternative is an error.
- ``loose=True`` (package.json ``engines.node``, ``build/runtimes.py``): pre-release parts
  are read in any spelling and dropped (``>=1.3.0-rc.1`` is ``>=1.3.0``), and an empty
  range or alternative matches everything, as npm's ``""`` does.

Unreadable text raises ValueError; callers turn it into their own errors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Range", "Version", "floor", "parse_version"]

_VERSION = re.compile(
    r"v?(0|[1-9]\d*)(?:\.(0|[1-9]\d*))?(?:\.(0|[1-9]\d*))?"
    r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z.-]+)?"
)
# A partial version in a range; its pre-release is checked for well-formedness apart
# (_PRERELEASE), because the loose reading takes any spelling.
_PARTIAL = re.compile(
    r"v?(\d+|[xX*])(?:\.(\d+|[xX*]))?(?:\.(\d+|[xX*]))?(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?"
)
_PRERELEASE = re.compile(r"[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*")
_OPERATOR = re.compile(r"(\^|~>?|>=|<=|>|<|=)?(.*)")


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


def floor(text: str, *, loose: bool = False) -> Version:
    """The lowest version a partial version names (``1.x`` -> 1.0.0); ValueError if none."""
    return _floor(_partial(text, loose))


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
class Range:
    """Alternatives (``||``), each a set of comparators that must all hold."""

    alternatives: tuple[tuple[_Comparator, ...], ...]

    @classmethod
    def parse(cls, text: str, *, loose: bool = False) -> Range:
        """Read ``text`` (see the module docstring for ``loose``); ValueError if unreadable."""
        spec = re.sub(r"(<=|>=|<|>|=|\^|~>?)\s+", r"\1", text.strip())  # ">= 1" is ">=1"
        alternatives = []
        for part in spec.split("||"):
            part = part.strip()
            if not part and not loose:
                raise ValueError("an alternative is empty")
            alternatives.append(tuple(_set_comparators(part, loose)))
        return cls(tuple(alternatives))

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


def _partial(text: str, loose: bool) -> _Partial:
    match = _PARTIAL.fullmatch(text)
    pre = match.group(4) if match else None
    if not match or (pre and not loose and not _PRERELEASE.fullmatch(pre)):
        raise ValueError(f"{text!r} is not a version")
    numbers: list[int | None] = []
    for group in match.groups()[:3]:
        if group is None or group in "xX*" or (numbers and numbers[-1] is None):
            numbers.append(None)
        else:
            numbers.append(int(group))
    if loose or not pre:
        return numbers[0], numbers[1], numbers[2], ()
    if numbers[2] is None:
        raise ValueError(f"{text!r} has a pre-release but no patch version")
    return numbers[0], numbers[1], numbers[2], tuple(pre.split("."))


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


def _set_comparators(part: str, loose: bool) -> list[_Comparator]:
    hyphen = re.fullmatch(r"(\S+)\s+-\s+(\S+)", part)
    if hyphen:
        low, high = _partial(hyphen[1], loose), _partial(hyphen[2], loose)
        return _comparators(">=", low) + _comparators("<=", high)
    out: list[_Comparator] = []
    for token in part.split():
        match = _OPERATOR.fullmatch(token)
        assert match is not None  # the pattern matches any token
        # Loose, "''" is simply not a version; strict says which operator lacks one.
        if not match[2] and not loose:
            raise ValueError(f"{token!r} has no version")
        out += _comparators(match[1] or "", _partial(match[2], loose))
    return out
