"""A service's drain window: how long an instance taken out of its route keeps serving
what it already carries (requests in flight, WebSockets, server-sent event streams)
before it is stopped. Rollouts, pause, delete and scale-in all drain by it.

The ``drain_seconds`` setting is the default; a service sets its own with the resource
tag ``slipway:drain-seconds`` (App Runner's model has no member for it). A service of
long-lived streams wants a long window, one of short requests a short one: the
deployment ends sooner. The window ends early once nothing is left in flight.
"""

from __future__ import annotations

from collections.abc import Mapping

TAG_DRAIN_SECONDS = "slipway:drain-seconds"
# The longest window a tag may ask for: HAProxy closes an idle WebSocket after its
# ``timeout tunnel`` (routing/haproxyconfig.py) anyway, so a longer drain holds nothing.
MAX_DRAIN_SECONDS = 3600


def parse_drain_seconds(text: str) -> int | None:
    """A tag's value as whole seconds, 0 to ``MAX_DRAIN_SECONDS``; None if it is not."""
    text = text.strip()
    if not text.isdigit() or not 0 <= int(text) <= MAX_DRAIN_SECONDS:
        return None
    return int(text)


def drain_problem(value: str) -> str | None:
    """What is wrong with ``value`` as a ``slipway:drain-seconds`` tag, or None."""
    if parse_drain_seconds(value) is not None:
        return None
    return (
        f"{TAG_DRAIN_SECONDS} {value!r} is not a whole number of seconds from 0 to"
        f" {MAX_DRAIN_SECONDS}"
    )


def drain_window(tags: Mapping[str, str], default: float) -> float:
    """The window of a service with ``tags``: its tag's, else ``default`` (the
    ``drain_seconds`` setting). A tag stored before it was checked falls back too."""
    value = tags.get(TAG_DRAIN_SECONDS)
    seconds = parse_drain_seconds(value) if value is not None else None
    return float(default if seconds is None else seconds)
