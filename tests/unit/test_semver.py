"""semver: versions, precedence, npm ranges read strictly and loosely."""

from __future__ import annotations

import pytest

from slipway.semver import Range, Version, floor, parse_version


def test_parse_version_counts_the_parts_spelled_out() -> None:
    assert parse_version("v1.2.3-rc.1+build.5") == (Version(1, 2, 3, ("rc", "1")), 3)
    assert parse_version("1.25") == (Version(1, 25, 0), 2)
    assert parse_version("1.2-rc.1") is None
    assert parse_version("01.2.3") is None


def test_floor_fills_missing_parts_with_zero() -> None:
    assert floor("1.x") == Version(1, 0, 0)
    assert floor("2.3.4-rc.1") == Version(2, 3, 4, ("rc", "1"))
    assert floor("2.3.4-rc.1", loose=True) == Version(2, 3, 4)
    with pytest.raises(ValueError, match="is not a version"):
        floor("lts")


@pytest.mark.parametrize(
    ("spec", "version", "ok"),
    [
        ("^1.2", "1.9.0", True),
        ("^1.2", "2.0.0", False),
        ("^0.2.3", "0.2.9", True),
        ("^0.0.3", "0.0.4", False),
        ("~1.2", "1.2.9", True),
        ("~1", "1.9.0", True),
        (">= 1.0 <2", "1.5.0", True),
        ("1.2 - 1.4", "1.4.7", True),
        ("1.2 - 1.4.2", "1.4.7", False),
        ("1.x || >=3", "3.1.0", True),
        ("*", "0.0.1", True),
        ("<*", "0.0.1", False),
    ],
)
def test_ranges(spec: str, version: str, ok: bool) -> None:
    assert Range.parse(spec).contains(floor(version)) is ok
    assert Range.parse(spec, loose=True).contains(floor(version, loose=True)) is ok


def test_strict_pre_releases_need_a_range_that_names_one() -> None:
    rc = floor("1.3.0-rc.1")
    assert not Range.parse("^1.2").contains(rc)
    assert Range.parse(">=1.3.0-rc.0 <2").contains(rc)
    assert not Range.parse(">=1.2.9-rc.0").contains(rc)  # another x.y.z


def test_loose_drops_pre_releases() -> None:
    assert Range.parse(">1.3.0-rc.1", loose=True).contains(floor("1.3.0")) is False
    assert Range.parse("1.2-rc", loose=True).contains(floor("1.2.5")) is True
    assert Range.parse("", loose=True).contains(floor("9.9.9")) is True


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("1 ||", "an alternative is empty"),
        (">=1 <", "'<' has no version"),
        ("1.2-rc", "has a pre-release but no patch version"),
        ("1.2.3-rc..1", "is not a version"),
        ("^1.x.y", "is not a version"),
    ],
)
def test_strict_refuses(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Range.parse(spec)


def test_loose_still_refuses_what_is_not_a_version() -> None:
    with pytest.raises(ValueError, match="'' is not a version"):
        Range.parse(">=", loose=True)
    with pytest.raises(ValueError, match="'lts' is not a version"):
        Range.parse("lts", loose=True)
