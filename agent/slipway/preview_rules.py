"""Preview environments, the decisions: what a parent's ``slipway:previews`` tag asks for,
what a preview is called, which previews must go, what its pull request comment says.

Pure functions over plain data, so every rule is unit tested without GitHub or docker;
``previews.py`` acts on what they decide.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import InvalidRequest
from .models import ServiceSpec

TAG_PREVIEWS = "slipway:previews"  # on a parent: ttl=3d,max=5,forks=no,poll=yes
TAG_PREVIEW_OF = "slipway:preview-of"  # on a preview: its parent's ARN
TAG_PREVIEW_PR = "slipway:preview-pr"  # on a preview: its pull request's number
TAG_PREVIEW_ENV = "slipway:preview-env:"  # on a parent, prefix: one env override per key
NAME_MAX = 40  # App Runner's ServiceName limit
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|h|d)?")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_YES, _NO = {"yes", "true", "on", "1"}, {"no", "false", "off", "0"}


@dataclass(frozen=True)
class PreviewPolicy:
    """How a parent's previews live: ``ttl`` seconds without a change, at most ``max`` at
    once, pull requests from forks built or not, open pull requests polled or only
    heard of through webhooks."""

    ttl: float
    max: int
    forks: bool = False
    poll: bool = True

    def to_tag(self) -> str:
        return (
            f"ttl={format_duration(self.ttl)},max={self.max},"
            f"forks={'yes' if self.forks else 'no'},poll={'yes' if self.poll else 'no'}"
        )


@dataclass(frozen=True)
class Pull:
    """What GitHub says of one pull request (``sources/github_pulls.py`` reads it)."""

    number: int
    open: bool
    merged: bool
    head_sha: str
    head_ref: str
    head_repo: str | None  # owner/name of the head's repository; None: the fork is gone
    head_clone_url: str | None
    base_repo: str  # owner/name

    @property
    def fork(self) -> bool:
        return self.head_repo is None or self.head_repo.lower() != self.base_repo.lower()


@dataclass(frozen=True)
class LivePreview:
    """A preview service as the sweep sees it; times are epoch seconds."""

    name: str
    number: int
    created_at: float
    changed_at: float  # its last change: a push redeploys it and renews its TTL
    busy: bool  # an operation is under way: judged once it ends


def parse_duration(text: str) -> float | None:
    """``90``, ``90s``, ``5m``, ``1h`` or ``3d`` in seconds; None if it is none of those."""
    match = _DURATION.fullmatch(text.strip())
    if not match:
        return None
    return float(match[1]) * _UNITS[match[2] or "s"]


def format_duration(seconds: float) -> str:
    for unit in ("d", "h", "m"):
        if seconds >= _UNITS[unit] and seconds % _UNITS[unit] == 0:
            return f"{int(seconds // _UNITS[unit])}{unit}"
    return f"{seconds:g}s"


def _flag(key: str, value: str) -> bool:
    word = value.strip().lower()
    if word in _YES or word in _NO:
        return word in _YES
    raise InvalidRequest(f"{TAG_PREVIEWS}: {key}={value!r} is not yes or no")


def parse_policy(text: str, *, ttl: float, max_previews: int) -> PreviewPolicy:
    """The policy a tag value asks for; parts it leaves out take the defaults given (the
    agent's ``preview_ttl`` and ``preview_max``). Raises naming the part that is wrong."""
    values: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        if not sep or key not in ("ttl", "max", "forks", "poll"):
            raise InvalidRequest(
                f"{TAG_PREVIEWS}: {part!r} is not one of ttl=3d, max=5, forks=no, poll=yes"
            )
        values[key] = value.strip()
    if "ttl" in values:
        parsed = parse_duration(values["ttl"])
        if parsed is None or parsed <= 0:
            raise InvalidRequest(f"{TAG_PREVIEWS}: ttl={values['ttl']!r} is not like 30m, 12h, 3d")
        ttl = parsed
    if "max" in values:
        if not values["max"].isdigit() or int(values["max"]) < 1:
            raise InvalidRequest(f"{TAG_PREVIEWS}: max={values['max']!r} is not a number from 1")
        max_previews = int(values["max"])
    return PreviewPolicy(
        ttl=ttl,
        max=max_previews,
        forks=_flag("forks", values["forks"]) if "forks" in values else False,
        poll=_flag("poll", values["poll"]) if "poll" in values else True,
    )


def policy_text(ttl: str | None, max_previews: int | None, forks: bool, poll: bool) -> str:
    """The ``slipway:previews`` tag value of the enable options, checked as the agent
    will read it (``slipway previews enable`` and the console)."""
    parts = [f"ttl={ttl}"] if ttl else []
    if max_previews is not None:
        parts.append(f"max={max_previews}")
    parts += [f"forks={'yes' if forks else 'no'}", f"poll={'yes' if poll else 'no'}"]
    text = ",".join(parts)
    parse_policy(text, ttl=1.0, max_previews=1)
    return text


def check_previewable(name: str, source: Mapping[str, Any]) -> None:
    """Previews read pull requests through the service's GitHub connection: refuse a
    service (its ``SourceConfiguration``) that has none."""
    if not source.get("CodeRepository") or not source.get("AuthenticationConfiguration", {}).get(
        "ConnectionArn"
    ):
        raise InvalidRequest(
            f"{name} is not a code service with a GitHub connection; previews read"
            " pull requests through the connection"
        )


def preview_tag_keys(tags: Iterable[str]) -> list[str]:
    """The tag keys that enable previews (the policy and its env overrides)."""
    return [k for k in tags if k == TAG_PREVIEWS or k.startswith(TAG_PREVIEW_ENV)]


def preview_name(parent: str, number: int) -> str:
    return f"{parent}-pr-{number}"


def refusal(pull: Pull, policy: PreviewPolicy, parent: str) -> str | None:
    """Why this open pull request gets no preview, or None when it gets one."""
    if pull.fork and not policy.forks:
        return (
            f"pull request #{pull.number} comes from a fork"
            f" ({pull.head_repo or 'deleted repository'}) and previews of {parent} do not"
            " build forks (allow them with `slipway previews enable --allow-forks`)"
        )
    if pull.fork and not pull.head_clone_url:
        return f"pull request #{pull.number}'s fork was deleted; there is nothing to build"
    name = preview_name(parent, pull.number)
    if len(name) > NAME_MAX:
        return f"the preview's name {name} is longer than {NAME_MAX} characters (ServiceName)"
    return None


def preview_params(
    spec: ServiceSpec, parent_arn: str, tags: dict[str, str], pull: Pull, name: str
) -> dict[str, Any]:
    """CreateService's parameters for a preview: the parent's configuration on the pull
    request's head branch, with the parent's ``slipway:preview-env:KEY`` overrides (for
    API-configured sources). A fork's gets nothing of the parent's that is secret: its
    own repository, no connection, no ``RuntimeEnvironmentSecrets``."""
    source = copy.deepcopy(spec.source.to_api())
    code = source["CodeRepository"]
    code["SourceCodeVersion"] = {"Type": "BRANCH", "Value": pull.head_ref}
    source["AutoDeploymentsEnabled"] = True
    values = code["CodeConfiguration"].get("CodeConfigurationValues")
    if pull.fork:
        code["RepositoryUrl"] = pull.head_clone_url
        source.pop("AuthenticationConfiguration", None)
        if values:
            values.pop("RuntimeEnvironmentSecrets", None)
    overrides = {
        k.removeprefix(TAG_PREVIEW_ENV): v for k, v in tags.items() if k.startswith(TAG_PREVIEW_ENV)
    }
    if overrides and values is not None:
        values["RuntimeEnvironmentVariables"] = {
            **(values.get("RuntimeEnvironmentVariables") or {}),
            **overrides,
        }
    params: dict[str, Any] = {
        "ServiceName": name,
        "SourceConfiguration": source,
        "InstanceConfiguration": spec.instance.to_api(),
        "HealthCheckConfiguration": spec.health.to_api(),
        "NetworkConfiguration": spec.network.to_api(),
        "ObservabilityConfiguration": spec.observability_api(),
        "Tags": [
            {"Key": TAG_PREVIEW_OF, "Value": parent_arn},
            {"Key": TAG_PREVIEW_PR, "Value": str(pull.number)},
        ],
    }
    if spec.auto_scaling_arn:
        params["AutoScalingConfigurationArn"] = spec.auto_scaling_arn
    return params


def to_remove(
    previews: list[LivePreview], policy: PreviewPolicy, now: float
) -> list[tuple[LivePreview, str]]:
    """The previews to delete and why: those unchanged for longer than the TTL, then the
    oldest beyond the maximum. One whose operation is under way is judged when it ends."""
    gone: list[tuple[LivePreview, str]] = []
    kept = []
    for preview in sorted(previews, key=lambda p: (p.created_at, p.number)):
        if not preview.busy and now - preview.changed_at > policy.ttl:
            gone.append(
                (preview, f"unchanged for longer than its TTL ({format_duration(policy.ttl)})")
            )
        else:
            kept.append(preview)
    excess = len(kept) - policy.max
    for preview in kept[: max(excess, 0)]:
        gone.append((preview, f"more than {policy.max} previews are open (max); oldest first"))
    return gone


def comment(marker: str, name: str, state: str, url: str | None, detail: str) -> str:
    """The one comment a pull request gets, rewritten in place as the preview changes."""
    lines = [marker, f"**slipway preview `{name}`**: {state}"]
    if url:
        lines.append(f"URL: {url}")
    if detail:
        lines.append(detail)
    return "\n\n".join(lines)


def marker(parent: str) -> str:
    """The hidden line by which slipway finds its own comment again (one per parent)."""
    return f"<!-- slipway-preview:{parent} -->"
