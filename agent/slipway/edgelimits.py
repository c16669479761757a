"""What one client may cost the agent before it has proved who it is: the size of a
request body, the nesting of its JSON, and how often it may fail to authenticate or
deliver a webhook. Pure rules over plain data; the HTTP edge applies them
(``api/edge.py``, ``api/app.py``, ``triggers/webhooks.py``).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from .errors import InvalidRequest, SlipwayError

MIB = 1024 * 1024


class RequestTooLarge(SlipwayError):
    """A body past the cap: refused before it is read whole, or as soon as it passes."""

    code = "RequestEntityTooLargeException"
    status = 413


class Throttled(SlipwayError):
    """Too many failed authentications or webhook deliveries from one address. AWS
    answers its common ``ThrottlingException`` with HTTP 400, which botocore's retry
    rules recognise (they back off and retry)."""

    code = "ThrottlingException"
    status = 400


@dataclass(frozen=True)
class EdgeLimits:
    """Each field is a setting of the same name. ``max_request_bytes`` holds for the App
    Runner API and slipway's own routes (the largest App Runner request, a CreateService
    with every member, is a few KB); ``max_hook_bytes`` for webhooks: GitHub sends up to
    25 MB, but a push payload lists at most 20 commits and a delivery is only a hint to
    look at the source now, so one refused costs only the wait for the next poll.
    ``max_json_depth`` bounds nesting before any JSON is parsed or HMAC checked (App
    Runner's deepest input nests 6). The buckets: per client address, ``*_burst`` at once,
    refilled by ``*_per_minute``."""

    max_request_bytes: int = MIB
    max_hook_bytes: int = 5 * MIB
    max_json_depth: int = 32
    auth_failure_burst: int = 20
    auth_failures_per_minute: float = 10.0
    hook_burst: int = 60
    hooks_per_minute: float = 120.0

    def check(self) -> None:
        """Refuse a limit that is no limit, naming the setting."""
        for name in ("max_request_bytes", "max_hook_bytes", "max_json_depth"):
            if getattr(self, name) < 1:
                raise InvalidRequest(f"{name} must be 1 or more, not {getattr(self, name)}")
        for burst, rate in (
            ("auth_failure_burst", "auth_failures_per_minute"),
            ("hook_burst", "hooks_per_minute"),
        ):
            if getattr(self, burst) < 1:
                raise InvalidRequest(f"{burst} must be 1 or more, not {getattr(self, burst)}")
            if not getattr(self, rate) > 0:
                raise InvalidRequest(f"{rate} must be more than 0, not {getattr(self, rate)}")


def json_depth(body: bytes, limit: int) -> int:
    """How deep ``body``'s JSON nests, counting brackets outside strings, without parsing
    it; stops counting past ``limit`` (the answer is then ``limit + 1``)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


def check_json_depth(body: bytes, limit: int) -> None:
    """``InvalidRequest`` when ``body`` nests deeper than ``limit``, before any parse."""
    if json_depth(body, limit) > limit:
        raise InvalidRequest(f"request JSON nests deeper than {limit} (setting max_json_depth)")


class TokenBuckets:
    """One token bucket per key (a client address): ``burst`` tokens, refilled at
    ``per_minute``. ``take`` spends one and says whether there was one. At most
    ``max_keys`` buckets are kept; the least recently used goes first (a full bucket
    is what a forgotten key gets back anyway, so only a flood of addresses forgets one
    early)."""

    def __init__(
        self,
        burst: int,
        per_minute: float,
        *,
        max_keys: int = 10000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.burst = burst
        self.rate = per_minute / 60.0
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def _level(self, key: str, now: float) -> float:
        tokens, at = self._buckets.get(key, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - at) * self.rate)

    def allows(self, key: str) -> bool:
        """Whether ``take`` would succeed now, spending nothing."""
        with self._lock:
            return self._level(key, self.clock()) >= 1.0

    def take(self, key: str) -> bool:
        """Spend one token of ``key``'s bucket; False when it is empty."""
        with self._lock:
            now = self.clock()
            tokens = self._level(key, now)
            ok = tokens >= 1.0
            self._buckets[key] = (tokens - 1.0 if ok else tokens, now)
            self._buckets.move_to_end(key)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
            return ok
