"""A service's drain window (``slipway:drain-seconds``): how the tag reads, how a bad
one is refused at the API's edge, and the default it falls back to."""

from __future__ import annotations

import pytest

from slipway.drain import MAX_DRAIN_SECONDS, TAG_DRAIN_SECONDS, drain_window
from slipway.errors import InvalidRequest
from slipway.tags import tag_dict


def test_the_tag_sets_the_window_and_the_setting_is_the_default() -> None:
    assert drain_window({TAG_DRAIN_SECONDS: "300"}, 30) == 300
    assert drain_window({TAG_DRAIN_SECONDS: " 0 "}, 30) == 0
    assert drain_window({}, 30) == 30
    assert drain_window({"other": "5"}, 12.5) == 12.5
    # One stored before tags were checked (a restore of an old backup) is not obeyed.
    assert drain_window({TAG_DRAIN_SECONDS: "forever"}, 30) == 30


@pytest.mark.parametrize("value", ["forever", "-1", "1.5", "30s", "", str(MAX_DRAIN_SECONDS + 1)])
def test_a_bad_window_is_refused_naming_the_tag_and_the_limit(value: str) -> None:
    tags = [{"Key": "team", "Value": "a"}, {"Key": TAG_DRAIN_SECONDS, "Value": value}]
    with pytest.raises(InvalidRequest) as refused:
        tag_dict(tags)
    message = refused.value.message
    assert message.startswith(f"Tags[1]: {TAG_DRAIN_SECONDS} {value!r}")
    assert f"from 0 to {MAX_DRAIN_SECONDS}" in message


def test_a_good_window_is_kept_as_given() -> None:
    tags = tag_dict([{"Key": TAG_DRAIN_SECONDS, "Value": str(MAX_DRAIN_SECONDS)}])
    assert tags == {TAG_DRAIN_SECONDS: str(MAX_DRAIN_SECONDS)}
