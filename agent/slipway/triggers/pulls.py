"""GitHub ``pull_request`` deliveries, for preview environments.

``webhooks.handle_github`` has verified, deduplicated and decoded the delivery; this
reads the action and the number and hands them to a ``PullSink`` (``previews.Previews``).
As with pushes, the payload is only a hint: the sink reads the pull request from
GitHub's API itself, so a forged or stale payload can name a number and nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

ACTIONS = frozenset({"opened", "reopened", "synchronize", "closed"})


@dataclass(frozen=True)
class PullOutcome:
    """What a delivery did: ``outcome`` is "accepted" (a preview was made, changed or
    removed), "refused" (a fork, named in ``reason``) or "ignored"."""

    outcome: str
    reason: str = ""
    services: list[str] = field(default_factory=list)


class PullSink(Protocol):
    def pull_changed(self, urls: set[str], number: int, action: str) -> PullOutcome:
        """A pull request of one of the repositories ``urls`` changed (``action``)."""
        ...


def read_pull_event(payload: Any) -> tuple[str, int] | str:
    """(action, number), or the reason the payload is unusable."""
    if not isinstance(payload, dict):
        return "pull_request payload is not a JSON object"
    action = payload.get("action")
    number = payload.get("number")
    if number is None and isinstance(payload.get("pull_request"), dict):
        number = payload["pull_request"].get("number")
    if not isinstance(action, str) or not action:
        return "pull_request payload lacks action"
    if not isinstance(number, int) or isinstance(number, bool) or number < 1:
        return "pull_request payload lacks a pull request number"
    return action, number
