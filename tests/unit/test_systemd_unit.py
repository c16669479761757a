"""systemd/slipway.service and slipway-dns.service: the keys the install instructions
rely on, and `systemd-analyze verify` where that tool exists."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "slipway.service"
DNS_UNIT = UNIT.with_name("slipway-dns.service")
DNS_EXEC = (
    "/opt/slipway/.venv/bin/python -m slipway.routing.routedns"
    " --listen 127.0.0.1:8753 --table /var/lib/slipway/routes.json"
)


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
        # the route DNS responder, when installed, runs before the agent
        assert "slipway-dns.service" in deps, f"{key}= lacks slipway-dns.service"


def test_service_section() -> None:
    service = load_unit()["Service"]
    assert service["ExecStart"] == "/opt/slipway/.venv/bin/slipway serve"
    assert service["StateDirectory"] == "slipway"
    assert service["ConfigurationDirectory"] == "slipway"
    # systemd would otherwise make them 0755 again at each start.
    assert service["StateDirectoryMode"] == service["ConfigurationDirectoryMode"] == "0700"
    assert service["Restart"] == "on-failure"
    assert service["RestartSec"] == "2"
    # The agent's death must not take the containers: they belong to dockerd.
    assert service["KillMode"] == "process"
    assert "PYTHONUNBUFFERED=1" in service["Environment"].split()


def test_unit_is_installable() -> None:
    assert load_unit()["Install"]["WantedBy"] == "multi-user.target"


def test_dns_unit() -> None:
    dns = load_unit(DNS_UNIT)
    assert dns["Unit"]["Description"].strip()
    assert set(dns["Unit"]["Before"].split()) >= {"caddy.service", "slipway.service"}
    assert dns["Unit"]["StartLimitIntervalSec"] == "0"  # never stop restarting it
    service = dns["Service"]
    assert service["Type"] == "simple"
    assert service["ExecStart"] == DNS_EXEC
    # the agent's route table: <data_dir>/routes.json, data_dir being the StateDirectory
    assert service["StateDirectory"] == "slipway"
    assert service["Restart"] == "always"
    assert service["RestartSec"] == "0.2"
    assert "PYTHONUNBUFFERED=1" in service["Environment"].split()
    assert dns["Install"]["WantedBy"] == "multi-user.target"


def test_dns_unit_uses_the_same_install_as_the_agent() -> None:
    agent_exec = load_unit()["Service"]["ExecStart"].split()[0]
    dns_exec = load_unit(DNS_UNIT)["Service"]["ExecStart"].split()[0]
    assert Path(agent_exec).parent == Path(dns_exec).parent  # /opt/slipway/.venv/bin


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify refuses a missing ExecStart binary, and /opt/slipway is only there
    # once installed: check copies that start an executable that exists.
    replacements = {
        UNIT: ("ExecStart=/opt/slipway/.venv/bin/slipway serve", "ExecStart=/bin/true serve"),
        DNS_UNIT: (f"ExecStart={DNS_EXEC}", "ExecStart=/bin/true routedns"),
    }
    copies = []
    for unit, (old, new) in replacements.items():
        text = unit.read_text().replace(old, new)
        assert new in text
        copy = tmp_path / unit.name
        copy.write_text(text)
        copies.append(str(copy))
    result = subprocess.run(
        ["systemd-analyze", "verify", *copies],
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = result.stdout + result.stderr
    # verify exits 0 on unknown keys or bad values but names the file and line.
    names = [unit.name for unit in replacements]
    problems = [line for line in output.splitlines() if any(n in line for n in names)]
    assert result.returncode == 0 and not problems, output
