"""Tags of App Runner resources: the API's ``[{"Key", "Value"}]`` list checked and made a dict.

Apart from ``services.py`` because every taggable resource is created with tags (services,
auto scaling configurations), and slipway's own tags (a poll interval, tags to track,
an idle timeout, a drain window) are checked here the same way for all of them.
"""

from __future__ import annotations

from .drain import TAG_DRAIN_SECONDS, drain_problem
from .errors import InvalidRequest
from .idle import TAG_IDLE_TIMEOUT, parse_idle_timeout
from .traffic import TAG_ROLLOUT, parse_policy
from .triggers.intervals import TAG_POLL_INTERVAL, TAG_TRACK_TAGS, parse_interval

MAX_TAGS = 50
# slipway's tags whose values have a grammar: each parser raises InvalidRequest.
VALUE_PARSERS = {TAG_IDLE_TIMEOUT: parse_idle_timeout, TAG_ROLLOUT: parse_policy}


def tag_dict(tags: list[dict[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for i, tag in enumerate(tags):
        if "Key" not in tag:
            raise InvalidRequest(f"Tags[{i}]: Key is required")
        value = tag.get("Value", "")
        if tag["Key"] == TAG_POLL_INTERVAL and parse_interval(value) is None:
            raise InvalidRequest(
                f"Tags[{i}]: {TAG_POLL_INTERVAL} {value!r} is not an interval like 30s, 5m or 1h"
            )
        if tag["Key"] == TAG_TRACK_TAGS and not value.strip():
            raise InvalidRequest(
                f"Tags[{i}]: {TAG_TRACK_TAGS} needs a glob like v* or a semver range like ^1.2"
            )
        if tag["Key"] in VALUE_PARSERS:
            try:
                VALUE_PARSERS[tag["Key"]](value)
            except InvalidRequest as exc:
                raise InvalidRequest(f"Tags[{i}]: {exc.message}") from exc
        if tag["Key"] == TAG_DRAIN_SECONDS and (problem := drain_problem(value)):
            raise InvalidRequest(f"Tags[{i}]: {problem}")
        out[tag["Key"]] = value
    if len(out) > MAX_TAGS:
        raise InvalidRequest(f"Tags: a resource can have at most {MAX_TAGS} tags")
    return out
