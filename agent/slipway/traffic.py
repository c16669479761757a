"""Traffic between a service's revisions, as Cloud Run has it: a split of its requests
by percent, revision tags (``<tag>--<service>.<base_domain>`` reaches one revision),
and the rollout policy that moves a new revision through steps (10% -> 50% -> 100%).

Only the rules live here, as pure functions over plain data, so each can be unit
tested: reading a ``REV=PERCENT`` list and resolving it against the revisions a service
kept, checking a tag as a DNS label that clashes with nothing, the instance weights a
split gives the router, and the verdict on one step of a rollout. Acting on them is
``operations/splits.py`` (a split, a tag) and ``operations/gradual.py`` (a rollout).

A split is stored by deployment (the operation whose instances run a revision), since
instances carry their deployment's id and a revision deployed twice has two of them;
the revisions are kept beside it for people.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidRequest
from .triggers.intervals import parse_interval

TAG_ROLLOUT = "slipway:rollout"  # e.g. 10,50,100/60s: steps in percent, the pause between
TAG_SEPARATOR = "--"  # <tag>--<service>
WEIGHT_PER_PERCENT = 2  # an instance's router weight per percent of requests
_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
_POLICY = re.compile(r"\s*([\d,\s]+)/\s*(\S+)\s*")


@dataclass(frozen=True)
class Split:
    """What a service's routes reach besides its live deployment. ``shares``: percent
    of the main route's requests per deployment id, summing to 100 (empty: the live
    deployment takes them all); ``tags``: tag -> deployment id, each at its own host;
    ``revisions``: the revision each of those deployments runs."""

    shares: Mapping[str, int] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    revisions: Mapping[str, str] = field(default_factory=dict)

    def kept(self) -> set[str]:
        """The deployments whose instances must keep running."""
        return {d for d, p in self.shares.items() if p > 0} | set(self.tags.values())

    def without_shares(self) -> Split:
        """The split once a deployment takes all requests: tags stay."""
        names = {d: r for d, r in self.revisions.items() if d in self.tags.values()}
        return Split({}, dict(self.tags), names)

    def to_row(self) -> dict[str, Any]:
        return {
            "shares": dict(self.shares),
            "tags": dict(self.tags),
            "revisions": dict(self.revisions),
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any] | None) -> Split:
        row = row or {}
        return cls(
            {str(k): int(v) for k, v in (row.get("shares") or {}).items()},
            dict(row.get("tags") or {}),
            dict(row.get("revisions") or {}),
        )


@dataclass(frozen=True)
class RolloutPolicy:
    """A deployment goes to ``steps`` percent of requests in turn (the last is 100),
    ``pause`` seconds each, while its figures stay within bounds of the old one's."""

    steps: tuple[int, ...]
    pause: float


def parse_policy(value: str) -> RolloutPolicy:
    """``10,50,100/60s`` -> RolloutPolicy; ``InvalidRequest`` naming what is wrong."""
    match = _POLICY.fullmatch(value)
    wanted = f"{TAG_ROLLOUT} {value!r} is not steps and a pause like 10,50,100/60s"
    if not match:
        raise InvalidRequest(wanted)
    pause = parse_interval(match[2])
    parts = [p.strip() for p in match[1].split(",")]
    if pause is None or not all(p.isdigit() for p in parts):
        raise InvalidRequest(wanted)
    steps = tuple(int(p) for p in parts)
    if any(not 1 <= s <= 100 for s in steps) or list(steps) != sorted(set(steps)):
        raise InvalidRequest(f"{TAG_ROLLOUT} {value!r}: steps must rise, each 1 to 100")
    if steps[-1] != 100:
        raise InvalidRequest(f"{TAG_ROLLOUT} {value!r}: the last step must be 100")
    return RolloutPolicy(steps, pause)


def parse_shares(entries: Iterable[str]) -> dict[str, int]:
    """``["abc=10", "def=90"]`` -> {revision: percent}; refuses a malformed entry, a
    percent outside 0..100, a revision named twice, and a total other than 100."""
    shares: dict[str, int] = {}
    for entry in entries:
        revision, sep, percent = str(entry).partition("=")
        revision, percent = revision.strip(), percent.strip()
        if not sep or not revision or not percent.isdigit():
            raise InvalidRequest(f"traffic {entry!r}: write REVISION=PERCENT, e.g. sha256:ab12=10")
        if int(percent) > 100:
            raise InvalidRequest(f"traffic {entry!r}: a percent is 0 to 100")
        if revision in shares:
            raise InvalidRequest(f"traffic: revision {revision} is named twice")
        shares[revision] = int(percent)
    if not shares:
        raise InvalidRequest("traffic: name at least one REVISION=PERCENT, or --to-latest")
    total = sum(shares.values())
    if total != 100:
        raise InvalidRequest(f"traffic: the percentages sum to {total}, not 100")
    return shares


def resolve_revision(wanted: str, deployments: Mapping[str, str]) -> str:
    """The deployment running revision ``wanted`` (its full name or a prefix of it),
    among ``deployments`` (deployment id -> revision, the preferred first)."""
    found = [d for d, r in deployments.items() if r == wanted]
    if not found:
        found = [d for d, r in deployments.items() if r.startswith(wanted)]
        if len({deployments[d] for d in found}) > 1:
            raise InvalidRequest(f"revision {wanted} is ambiguous: give more of it")
    if not found:
        known = ", ".join(sorted({r[:19] for r in deployments.values()})) or "none"
        raise InvalidRequest(f"unknown revision {wanted}; this service has: {known}")
    return found[0]


def resolve_shares(shares: Mapping[str, int], deployments: Mapping[str, str]) -> dict[str, int]:
    """{revision: percent} -> {deployment id: percent}; two names of one revision refused."""
    out: dict[str, int] = {}
    for revision, percent in shares.items():
        deployment = resolve_revision(revision, deployments)
        if deployment in out:
            raise InvalidRequest(f"traffic: revision {deployments[deployment]} is named twice")
        out[deployment] = percent
    return out


def check_tag(tag: str, service_label: str, taken: Iterable[str]) -> str:
    """The host label ``<tag>--<service>`` for a valid tag; refuses a tag that is no DNS
    label, one whose host label is too long, and one clashing with a service (``taken``:
    every service's name and host label)."""
    if not _LABEL.fullmatch(tag) or TAG_SEPARATOR in tag:
        raise InvalidRequest(
            f"revision tag {tag!r} is not a DNS label: lower-case letters, digits and"
            " single hyphens, starting and ending with a letter or digit"
        )
    label = f"{tag}{TAG_SEPARATOR}{service_label}"
    if len(label) > 63:
        raise InvalidRequest(f"revision tag {tag!r}: {label} is longer than a DNS label's 63")
    taken = {t.lower() for t in taken}
    for clash in (tag, label):
        if clash in taken:
            raise InvalidRequest(f"revision tag {tag!r} clashes with service {clash}")
    return label


def instance_weights(
    shares: Mapping[str, int], instances: Mapping[str, list[str]]
) -> dict[str, int]:
    """Each instance address's router weight (1..256) so that every deployment gets its
    share of requests, spread evenly over its ``instances``; a deployment at 0 percent
    or with no instance gets none."""
    counts = {d: len(a) for d, a in instances.items() if a and shares.get(d, 0) > 0}
    if not counts:
        return {}
    # Twice the percent per instance: 1..200 fits HAProxy's weights (at most 256), and
    # round numbers stay round, so Caddy's list in proportion stays short (10/90: 1:9).
    return {
        address: max(1, round(WEIGHT_PER_PERCENT * shares[d] / n))
        for d, n in counts.items()
        for address in instances[d]
    }


@dataclass(frozen=True)
class Figures:
    """What one revision answered during a step: requests, 5xx among them, and the
    latencies (seconds) of a sample of them."""

    requests: int = 0
    errors: int = 0
    latencies: tuple[float, ...] = ()

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def p99(self) -> float | None:
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]


@dataclass(frozen=True)
class Bounds:
    """How far a new revision may fall behind the old one in a step of a rollout:
    its 5xx rate by ``max_5xx_points`` percentage points, its p99 by ``max_p99_ratio``
    times the old one's plus ``p99_slack_ms``; it is judged once it answered
    ``min_requests`` requests in the step."""

    max_5xx_points: float = 1.0
    max_p99_ratio: float = 2.0
    p99_slack_ms: int = 50
    min_requests: int = 20


def judge(new: Figures, old: Figures, bounds: Bounds) -> str | None:
    """Why the new revision should be rolled back after a step, or None to advance."""
    if new.requests < bounds.min_requests:
        return None
    gap = (new.error_rate - old.error_rate) * 100
    if gap > bounds.max_5xx_points:
        return (
            f"its 5xx rate was {new.error_rate:.1%} ({new.errors} of {new.requests}) against"
            f" {old.error_rate:.1%} for the previous revision (bound: {bounds.max_5xx_points:g}"
            " points more, setting rollout_max_5xx_points)"
        )
    new_p99, old_p99 = new.p99, old.p99
    if new_p99 is not None and old_p99 is not None:
        limit = old_p99 * bounds.max_p99_ratio + bounds.p99_slack_ms / 1000
        if new_p99 > limit:
            return (
                f"its p99 latency was {new_p99 * 1000:.0f} ms against {old_p99 * 1000:.0f} ms"
                f" for the previous revision (bound: {limit * 1000:.0f} ms, settings"
                " rollout_max_p99_ratio and rollout_p99_slack_ms)"
            )
    return None


def describe(figures: Figures) -> str:
    """One revision's figures in a step, for its event."""
    p99 = f", p99 {figures.p99 * 1000:.0f} ms" if figures.p99 is not None else ""
    return f"{figures.requests} requests, {figures.error_rate:.1%} 5xx{p99}"
