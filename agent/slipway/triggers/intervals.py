"""The resource tags that tune tracking, and how their values read."""

from __future__ import annotations

import re

TAG_POLL_INTERVAL = "slipway:poll-interval"  # seconds between polls: 90, 90s, 5m, 1h
TAG_TRACK_TAGS = "slipway:track-tags"  # follow the newest matching tag: v* or ^1.2
_INTERVAL = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|h)?")


def parse_interval(text: str) -> float | None:
    """``90``, ``90s``, ``5m`` or ``1h``; None if it is none of those."""
    match = _INTERVAL.fullmatch(text.strip())
    if not match:
        return None
    return float(match[1]) * {"s": 1, "m": 60, "h": 3600}[match[2] or "s"]
