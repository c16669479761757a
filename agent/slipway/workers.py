"""Worker services: services without an HTTP port (queue consumers, schedulers, bots).

App Runner has no such thing; slipway marks one with the resource tag ``slipway:worker``
given to CreateService (``slipway services create NAME --worker``), for image and code
services alike. A worker:

- has no route: the router has no entry for its host and autoscaling by concurrency
  does not apply (it runs MinSize instances). Its ``ServiceUrl`` is still the name App
  Runner would give it (clients such as Terraform's provider read it), but nothing
  answers there;
- is healthy while its process stays up: a new instance counts as started once it has
  run ``worker_up_seconds`` without exiting; crashes and crash loops are reported as
  for web services (``upkeep.py``);
- rolls out start-first (``true``: the new run beside the old until they are up) or,
  with ``slipway:worker=single``, stop-first: the old stop before one new one starts,
  for a worker that must never run twice;
- pauses by stopping its instances, and resumes by starting them.

The rules here are pure: what a tag means, and which request members a worker refuses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .builds.yamlnodes import ConfigFileError
from .errors import InvalidRequest
from .idle import TAG_IDLE_TIMEOUT

WORKER_TAG = "slipway:worker"
PARALLEL = "parallel"  # start-first rollouts: instances of two revisions may overlap
SINGLE = "single"  # stop-first rollouts, and never more than one instance
_VALUES = {"": PARALLEL, "true": PARALLEL, "single": SINGLE}
_NO_IDLE = (
    f"Tags: {TAG_IDLE_TIMEOUT} does not apply to a worker service: no request ever wakes"
    " it; it runs MinSize instances (pause it to stop them)"
)


def mode_of(tags: Mapping[str, str]) -> str:
    """The worker mode the service's tags ask for: "" (a web service), PARALLEL or SINGLE."""
    if WORKER_TAG not in tags:
        return ""
    value = tags[WORKER_TAG].strip().lower()
    if value not in _VALUES:
        raise InvalidRequest(
            f"Tags: {WORKER_TAG} {tags[WORKER_TAG]!r} is not a worker mode: use 'true'"
            " (a rollout starts the new instances before it stops the old) or 'single'"
            " (it stops the old one first; never two at once)"
        )
    return _VALUES[value]


def check_request(mode: str, params: Mapping[str, Any], min_size: int) -> None:
    """Refuse what a worker cannot have: a port, an HTTP health check, scale to zero
    (no request ever wakes it) and, for a single one, a MinSize above 1. ``params``:
    CreateService's or UpdateService's members; ``min_size``: of the auto scaling
    configuration the service will use."""
    if not mode:
        return
    source = params.get("SourceConfiguration") or {}
    image = (source.get("ImageRepository") or {}).get("ImageConfiguration") or {}
    code = (source.get("CodeRepository") or {}).get("CodeConfiguration") or {}
    ports = (
        ("SourceConfiguration.ImageRepository.ImageConfiguration.Port", image),
        (
            "SourceConfiguration.CodeRepository.CodeConfiguration.CodeConfigurationValues.Port",
            code.get("CodeConfigurationValues") or {},
        ),
    )
    for where, members in ports:
        if members.get("Port"):
            raise InvalidRequest(
                f"{where}: a worker service ({WORKER_TAG} tag) has no HTTP port; leave Port out"
            )
    health = params.get("HealthCheckConfiguration") or {}
    if health.get("Protocol", "TCP") != "TCP" or "Path" in health:
        raise InvalidRequest(
            "HealthCheckConfiguration: a worker service is healthy while its process stays"
            " up; an HTTP health check (Protocol HTTP, Path) does not apply"
        )
    if any(tag.get("Key") == TAG_IDLE_TIMEOUT for tag in params.get("Tags") or []):
        raise InvalidRequest(_NO_IDLE)
    if mode == SINGLE and min_size != 1:
        raise InvalidRequest(
            f"AutoScalingConfigurationArn: a {WORKER_TAG}=single service runs exactly one"
            f" instance; its auto scaling configuration has MinSize {min_size}"
        )


def check_tag_change(is_worker: bool, keys: Iterable[str]) -> None:
    """TagResource and UntagResource cannot make a service a worker or a web service:
    that is fixed when it is created (its route, its health check, its rollouts). Nor
    can a worker be given an idle timeout."""
    keys = set(keys)
    if is_worker and TAG_IDLE_TIMEOUT in keys:
        raise InvalidRequest(_NO_IDLE)
    if WORKER_TAG in keys:
        kind = "a worker" if is_worker else "a web service"
        raise InvalidRequest(
            f"Tags: {WORKER_TAG} is set when a service is created; this one is {kind}."
            " Create a new service to change it"
        )


def check_network(mode: str, has_network: bool, filename: str) -> None:
    """A code worker's apprunner.yaml has no ``run.network``: there is no port to name."""
    if mode and has_network:
        raise ConfigFileError(
            filename,
            None,
            "run.network",
            f"a worker service ({WORKER_TAG} tag) has no HTTP port; remove run.network",
        )
