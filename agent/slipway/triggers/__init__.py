"""How slipway notices new revisions: schedules (``poll.py``) and webhooks
(``webhooks.py``). Both turn what they see into ``Found`` for a ``Watch`` and hand it
to ``services.Services.revision_detected``, which decides: deploy, hold for a person
(manual mode), or ignore (already live or queued).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Watch:
    """One distinct source to look at, shared by every service that tracks it.

    ``key`` identifies the source (kind, location, branch or tag, tag pattern,
    credential); services with equal keys are polled once.
    """

    key: str
    kind: str  # "git" or "image"
    location: str  # git RepositoryUrl, or ImageIdentifier without tag/digest ("host/repo")
    ref: str  # git branch, or image tag, followed when track_tags is None
    track_tags: (
        str | None
    )  # resource tag slipway:track-tags: a glob ("v*") or semver range ("^1.2")
    interval: float  # seconds between polls
    service_ids: tuple[str, ...]
    credentials: Callable[[], tuple[str, str] | str | None] = field(
        default=lambda: None, compare=False, repr=False
    )  # git: a token; image: (username, password); looked up at poll time, never stored here


@dataclass(frozen=True)
class Found:
    """What a source offers now: a commit SHA or an image digest, and what named it."""

    revision: str
    ref: str  # "refs/heads/main", "refs/tags/v1.2.0", or an image tag "v1.2.0"
