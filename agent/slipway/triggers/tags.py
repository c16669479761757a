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

Versions and ranges are ``slipway.semver``'s, read strictly: pre-release parts count.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable

from ..errors import InvalidRequest, SlipwayError
from ..semver import Range, Version, parse_version

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
_GLOB_WILDCARDS = "*?["
_SHOWN = 5


class NoMatchingTag(SlipwayError):
    """The source has no tag the pattern allows (yet): terminal until someone tags."""

    terminal = True


def is_range(pattern: str) -> bool:
    """A semver range starts with an operator or a digit; anything else is a glob."""
    return bool(pattern) and pattern.lstrip()[:1] in _RANGE_START


def check_pattern(pattern: str) -> None:
    """Refuse a pattern that is neither a usable glob nor a readable range, up front."""
    if not pattern or not pattern.strip():
        raise InvalidRequest("slipway:track-tags is empty; use a glob like v* or a range like ^1.2")
    if is_range(pattern):
        _range(pattern)


def matches(tag: str, pattern: str) -> bool:
    """Whether ``tag`` is one ``pattern`` allows (see the module docstring)."""
    if is_range(pattern):
        parsed = parse_version(tag)
        return parsed is not None and _range(pattern).contains(parsed[0])
    return fnmatch.fnmatchcase(tag, pattern)


def newest_matching(tags: Iterable[str], pattern: str) -> str | None:
    """The newest tag ``pattern`` allows, or None when none does.

    Raises InvalidRequest for a range that cannot be read.
    """
    check_pattern(pattern)
    if is_range(pattern):
        wanted = _range(pattern)
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


def _range(pattern: str) -> Range:
    try:
        return Range.parse(pattern)
    except ValueError as exc:
        raise InvalidRequest(
            f"slipway:track-tags {pattern!r} is not a semver range ({exc});"
            " ranges look like ^1.2, ~1.2.3, >=1.0 <2, 1.x; globs like v* or release-*"
        ) from exc
