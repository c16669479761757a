"""systemd/slipway.service: the keys the install instructions rely on, and
`systemd-analyze verify` where that tool exists."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "slipway.service"


def load_unit(path: Path = UNIT) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string(path.read_text())
    return parser


def test_unit_orders_after_docker_and_caddy() -> None:
    unit = load_unit()["Unit"]
    assert unit["Description"].strip()
    for key in ("After", "Wants"):
        deps = unit[key].split()
        for dep in ("docker.service", "caddy.service", "network-online.target"):
            assert dep in deps, f"{key}= lacks {dep}"


def test_service_section() -> None:
    service = load_unit()["Service"]
    assert service["ExecStart"] == "/opt/slipway/.venv/bin/slipway serve"
    assert service["StateDirectory"] == "slipway"
    assert service["ConfigurationDirectory"] == "slipway"
    assert service["Restart"] == "on-failure"
    assert service["RestartSec"] == "2"
    # The agent's death must not take the containers: they belong to dockerd.
    assert service["KillMode"] == "process"
    assert "PYTHONUNBUFFERED=1" in service["Environment"].split()


def test_unit_is_installable() -> None:
    assert load_unit()["Install"]["WantedBy"] == "multi-user.target"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify refuses a missing ExecStart binary, and /opt/slipway is only there
    # once installed: check a copy that starts an executable that exists.
    text = UNIT.read_text().replace(
        "ExecStart=/opt/slipway/.venv/bin/slipway serve", "ExecStart=/bin/true serve"
    )
    assert "ExecStart=/bin/true serve" in text
    copy = tmp_path / "slipway.service"
    copy.write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = result.stdout + result.stderr
    # verify exits 0 on unknown keys or bad values but names the file and line.
    problems = [line for line in output.splitlines() if "slipway.service" in line]
    assert result.returncode == 0 and not problems, output
