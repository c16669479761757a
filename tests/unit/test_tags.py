"""newest_matching: globs and semver ranges over tag names, pre-releases, ordering."""

from __future__ import annotations

import pytest

from slipway.errors import InvalidRequest
from slipway.triggers.tags import (
    Version,
    check_pattern,
    is_range,
    matches,
    newest_matching,
    no_matching_tag,
    parse_version,
)

TAGS = [
    "latest",
    "v0.9.0",
    "v1.2.0",
    "v1.2.3",
    "v1.9.3",
    "v1.10.0",
    "v1.11.0-rc.1",
    "v2.0.0-beta.2",
    "v2.0.0-beta.10",
    "v2.0.0-rc.1",
    "nightly",
]


@pytest.mark.parametrize(
    ("pattern", "kind"),
    [
        ("^1.2", "range"),
        ("~1.2.3", "range"),
        (">=1.0 <2", "range"),
        ("<2", "range"),
        ("=1.2.3", "range"),
        ("1.x", "range"),
        ("1.2.*", "range"),
        ("1.2.3", "range"),
        ("v*", "glob"),
        ("release-*", "glob"),
        ("*", "glob"),
        ("[0-9]*", "glob"),
        ("latest", "glob"),
    ],
)
def test_the_kind_is_told_by_the_first_character(pattern: str, kind: str) -> None:
    assert is_range(pattern) is (kind == "range")


# -- ranges ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "newest"),
    [
        ("^1.2", "v1.10.0"),
        ("^1.2.3", "v1.10.0"),
        ("~1.2", "v1.2.3"),
        ("~1.2.3", "v1.2.3"),
        ("~1", "v1.10.0"),
        (">=1.0 <2", "v1.10.0"),
        (">= 1.0 < 1.10", "v1.9.3"),
        ("1.x", "v1.10.0"),
        ("1.2.*", "v1.2.3"),
        ("1.2.x", "v1.2.3"),
        ("1.2", "v1.2.3"),
        ("=1.2.0", "v1.2.0"),
        ("1.2.0", "v1.2.0"),
        ("^0.9", "v0.9.0"),
        ("<1", "v0.9.0"),
        (">1.9.3 <2", "v1.10.0"),
        ("1.2 - 1.9", "v1.9.3"),
        ("^3 || ~1.2", "v1.2.3"),
        ("^0.9 || ^1", "v1.10.0"),
    ],
)
def test_ranges_pick_the_highest_version_they_allow(pattern: str, newest: str) -> None:
    assert newest_matching(TAGS, pattern) == newest


def test_pre_releases_are_excluded_unless_the_range_names_one() -> None:
    assert newest_matching(TAGS, ">=1.0") == "v1.10.0"  # not v2.0.0-rc.1, not v1.11.0-rc.1
    assert newest_matching(TAGS, "^2.0.0-beta.1") == "v2.0.0-rc.1"
    assert newest_matching(TAGS, ">=2.0.0-beta.3 <2.0.0-rc") == "v2.0.0-beta.10"
    assert newest_matching(TAGS, "1.11.0-rc.1") == "v1.11.0-rc.1"
    # A pre-release of another x.y.z than the one named stays out.
    assert newest_matching(TAGS, ">=1.10.1-rc.0") is None
    assert not matches("v1.11.0-rc.1", "^1.2")
    assert matches("v1.11.0-rc.1", "^1.11.0-rc.0")


def test_pre_release_precedence_follows_semver() -> None:
    order = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
    ]
    keys = [parse_version(v)[0].key for v in order]  # type: ignore[index]
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)
    assert newest_matching(reversed(order), ">=1.0.0-alpha") == "1.0.0"
    assert newest_matching(order[:-1], ">=1.0.0-alpha") == "1.0.0-rc.1"


def test_versions_may_be_partial_and_the_more_precise_wins_a_tie() -> None:
    assert parse_version("1.25") == (Version(1, 25, 0), 2)
    assert parse_version("v3") == (Version(3, 0, 0), 1)
    assert parse_version("1.2.3+build.5") == (Version(1, 2, 3), 3)
    assert parse_version("1.2-rc.1") is None
    assert parse_version("1.2.3.4") is None
    assert parse_version("latest") is None
    # Image tags as registries have them: floating 1 and 1.25 beside 1.25.3.
    assert newest_matching(["1", "1.25", "1.25.3", "1.24.9"], "^1") == "1.25.3"
    assert newest_matching(["1.25", "1.25.0"], "~1.25") == "1.25.0"
    assert newest_matching(["1.2.0", "v1.2.0"], "1.2.0") == "v1.2.0"  # equal: name decides


def test_no_match_is_none() -> None:
    assert newest_matching(TAGS, "^3") is None
    assert newest_matching([], "^1") is None
    assert newest_matching(["latest", "main"], ">=0") is None
    assert newest_matching(TAGS, "release-*") is None


@pytest.mark.parametrize("pattern", ["^", ">=1.0 <", "1.2.3.4", "^1.x.y", "1 ||", "~abc", "1.2-rc"])
def test_unreadable_ranges_are_refused(pattern: str) -> None:
    with pytest.raises(InvalidRequest, match="not a semver range"):
        newest_matching(TAGS, pattern)
    with pytest.raises(InvalidRequest):
        check_pattern(pattern)


def test_empty_pattern_is_refused() -> None:
    for pattern in ("", "  "):
        with pytest.raises(InvalidRequest, match="empty"):
            check_pattern(pattern)


# -- globs ----------------------------------------------------------------------------


def test_glob_picks_the_highest_version_not_the_last_string() -> None:
    # Lexicographically v1.9.3 > v1.10.0; by version v2.0.0-rc.1 is the highest.
    assert newest_matching(TAGS, "v1.*") == "v1.11.0-rc.1"
    assert newest_matching(["v1.9.3", "v1.10.0"], "v*") == "v1.10.0"
    assert newest_matching(TAGS, "v*") == "v2.0.0-rc.1"  # a glob takes pre-releases too


def test_glob_reads_versions_inside_its_literal_text() -> None:
    tags = ["release-1.2.9", "release-1.2.10", "release-1.2.10-linux", "other-9.9.9"]
    assert newest_matching(tags, "release-*") == "release-1.2.10"
    assert newest_matching(tags, "release-*-linux") == "release-1.2.10-linux"
    assert newest_matching(["app-1.9-linux", "app-1.10-linux"], "app-*-linux") == "app-1.10-linux"


def test_glob_without_versions_is_lexicographic() -> None:
    tags = ["build-20231231", "build-20240105", "build-20240101"]
    assert newest_matching(tags, "build-*") == "build-20240105"
    assert newest_matching(["stable-b", "stable-a"], "stable-?") == "stable-b"


def test_glob_ranks_versions_above_names_that_are_not() -> None:
    assert newest_matching(["v1.0.0", "vnext", "v0.1.0"], "v*") == "v1.0.0"
    assert newest_matching(["zeta", "1.0.0", "alpha"], "*") == "1.0.0"


def test_glob_is_case_sensitive_and_exact() -> None:
    assert newest_matching(["V1.0.0", "v0.1.0"], "v*") == "v0.1.0"
    assert newest_matching(["latest", "latest-old"], "latest") == "latest"
    assert newest_matching(["stable"], "release-*") is None


def test_order_of_input_does_not_matter() -> None:
    forward = newest_matching(TAGS, "v*")
    assert newest_matching(list(reversed(TAGS)), "v*") == forward
    assert newest_matching(iter(TAGS), "^1") == newest_matching(sorted(TAGS), "^1")


def test_no_matching_tag_names_a_few_tags() -> None:
    error = no_matching_tag("http://git/app", [f"v{i}" for i in range(9)], "^3")
    assert error.terminal
    assert "'^3'" in error.message and "(9 in all)" in error.message
    assert "no tags" in no_matching_tag("x", [], "v*").message
