"""Every engine answers the whole Backend seam: a method added to the Protocol and
missing from one engine fails here, not when an agent on that engine starts."""

from __future__ import annotations

import inspect

import pytest

from slipway.backends import Backend
from slipway.backends.docker_engine import DockerEngine
from slipway.backends.fake import FakeBackend
from slipway.backends.swarm import SwarmEngine

SEAM = sorted(
    name for name, member in vars(Backend).items() if not name.startswith("_") and callable(member)
)


@pytest.mark.parametrize("engine", [DockerEngine, SwarmEngine, FakeBackend])
def test_each_engine_has_every_method_of_the_seam(engine: type) -> None:
    missing = [name for name in SEAM if not callable(getattr(engine, name, None))]
    assert missing == []


def test_the_seam_is_read_from_the_protocol() -> None:
    assert "network_problems" in SEAM and "start_instance" in SEAM
    assert all(inspect.isfunction(getattr(Backend, name)) for name in SEAM)
