"""Scale to zero: the rules. A service opts in with the resource tag
``slipway:idle-timeout`` (App Runner's model forbids ``MinSize: 0``, so the opt-in cannot
live in the auto scaling configuration); after that long without a request and with
none in flight, its instances drain and stop, and the first request wakes it again.

Pure parts only: what the tag means (``parse_idle_timeout``), when a service has been
quiet long enough (``Quiet``), the limits of holding requests (``WakeLimits``), and
where the waker may listen (``waker_addresses``). ``operations/wake.py`` acts on them and
``routing/waker.py`` holds the requests.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import InvalidRequest
from .triggers.intervals import parse_interval

TAG_IDLE_TIMEOUT = "slipway:idle-timeout"
IDLE_FORMS = "seconds (90, 90s), minutes (10m) or hours (1h), more than 0"


def parse_idle_timeout(value: str) -> float:
    """Seconds of ``value`` (``90``, ``90s``, ``10m``, ``1h``); ``InvalidRequest`` naming
    the tag and the accepted forms otherwise."""
    seconds = parse_interval(value)
    if seconds is None or seconds <= 0:
        raise InvalidRequest(f"{TAG_IDLE_TIMEOUT} {value!r} is not a timeout: use {IDLE_FORMS}")
    return seconds


def idle_timeout(tags: Mapping[str, str]) -> float | None:
    """A service's idle timeout from its tags; None when it does not scale to zero (a
    value stored before it was checked counts as absent, never as zero)."""
    value = tags.get(TAG_IDLE_TIMEOUT)
    if value is None:
        return None
    try:
        return parse_idle_timeout(value)
    except InvalidRequest:
        return None


WAKER_CANDIDATES = 8  # addresses the waker tries, for agents that share an instance network


def waker_addresses(instance_network: str, instance_port: int) -> list[str]:
    """Where the waker may listen, in order: the instance network's own address (no
    instance is given it), then its broadcast address, then the top of its range (one an
    instance took is skipped; one the waker took costs an instance start one retry), all
    on the instances' port, so an idle service's route is one more A record for Caddy's
    route DNS and one more server for HAProxy, never a config load."""
    network = ipaddress.IPv4Network(instance_network)
    tops = [network.broadcast_address - n for n in range(WAKER_CANDIDATES - 1)]
    picks = [network.network_address, *tops][: min(WAKER_CANDIDATES, network.num_addresses)]
    return [f"{address}:{instance_port}" for address in picks]


@dataclass(frozen=True)
class WakeLimits:
    """How many requests one waking service may hold (``wake_hold_max``; more get 503
    with Retry-After) and how long each is held (``wake_timeout`` seconds)."""

    hold_max: int = 100
    timeout: float = 60.0

    def check(self) -> None:
        if self.hold_max < 1:
            raise InvalidRequest(f"setting wake_hold_max: {self.hold_max} is not 1 or more")
        if self.timeout <= 0:
            raise InvalidRequest(f"setting wake_timeout: {self.timeout} is not more than 0")


@dataclass
class _Seen:
    requests: int
    since: float  # when the service was last seen busy (a new request, or one in flight)


@dataclass
class Quiet:
    """How long each service has had no new request and none in flight, from samples of
    the router's counters: a request total that moved or a request in flight is activity.
    A service's first sample starts its clock (an agent just started knows nothing
    older)."""

    _seen: dict[str, _Seen] = field(default_factory=dict)

    def observe(self, service_id: str, requests: int, in_flight: int, now: float) -> None:
        seen = self._seen.get(service_id)
        if seen is None:
            self._seen[service_id] = _Seen(requests, now)
            return
        if requests != seen.requests or in_flight > 0:
            seen.requests, seen.since = requests, now

    def quiet_for(self, service_id: str, now: float) -> float:
        seen = self._seen.get(service_id)
        return 0.0 if seen is None else now - seen.since

    def restart(self, service_id: str, now: float) -> None:
        """The service just woke: its quiet time counts from now."""
        seen = self._seen.get(service_id)
        if seen is not None:
            seen.since = now

    def forget(self, service_id: str) -> None:
        self._seen.pop(service_id, None)


def goes_idle(timeout: float | None, quiet_for: float, in_flight: int) -> bool:
    """Whether a running, awake service should drain and stop now."""
    return timeout is not None and in_flight == 0 and quiet_for >= timeout
