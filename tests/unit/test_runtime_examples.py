"""The runtimes, their base images and their examples agree: every image a
``runtime.yaml`` names is one ``scripts/build-base-images`` builds (it reads the same
files), and every runtime this host can build has an example whose ``apprunner.yaml``
names it and a version it ships."""

from __future__ import annotations

import subprocess
from pathlib import Path

from slipway.builds.config import KNOWN_RUNTIMES, parse_apprunner_yaml
from slipway.builds.runtimes import load_runtimes, resolve_version

ROOT = Path(__file__).resolve().parents[2]


def test_build_base_images_builds_every_image_the_runtimes_name() -> None:
    listed = subprocess.run(
        [ROOT / "scripts" / "build-base-images", "--list"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.split()
    named = {image for r in load_runtimes().values() for image in r.versions.values()}
    assert sorted(listed) == sorted(named)


def test_runtime_names_select_their_images() -> None:
    def listing(*args: str) -> list[str]:
        done = subprocess.run(
            [ROOT / "scripts" / "build-base-images", "--list", *args],
            capture_output=True,
            text=True,
            timeout=30,
        )
        return done.stdout.split() if done.returncode == 0 else [done.stderr]

    assert listing("nodejs22") == ["slipway/base-nodejs:22.23.5"]
    assert listing("corretto8", "corretto11") == ["slipway/base-java:11.0"]
    assert listing("python") == ["slipway/base-python:3.11.2"]
    assert "unknown runtime, image or option 'dotnet7'" in listing("dotnet7")[0]


def test_every_buildable_runtime_has_an_example() -> None:
    runtimes = load_runtimes()
    covered = set()
    for config_file in sorted((ROOT / "examples").glob("*/apprunner.yaml")):
        config = parse_apprunner_yaml(config_file.read_text())
        resolve_version(runtimes[config.runtime], config.runtime_version)  # ships it
        covered.add(config.runtime)
    buildable = {name for name, r in runtimes.items() if not r.unavailable}
    assert buildable == covered == set(KNOWN_RUNTIMES) - {"dotnet6"}
