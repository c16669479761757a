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


def test_agent_unit_is_hardened_but_keeps_what_the_agent_needs() -> None:
    service = load_unit()["Service"]
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "read-only",  # ssh:// sources read root's ~/.ssh
        "PrivateTmp": "yes",
        "UMask": "0077",
    }.items():
        assert service[key] == value, key
    # Writable: its state, its settings, the socket directory shared with Caddy,
    # dockerd's socket and iptables' lock; nothing else.
    assert service["ReadWritePaths"].split() == [
        "/var/lib/slipway",
        "/etc/slipway",
        "-/run/slipway",
        "-/run/docker.sock",
        "-/run/xtables.lock",
    ]
    caps = set(service["CapabilityBoundingSet"].split())
    assert {"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_DAC_OVERRIDE"} <= caps  # fence, Caddy socket
    assert "CAP_SYS_ADMIN" not in caps
    assert "AF_NETLINK" in service["RestrictAddressFamilies"].split()  # iptables, ip addr


def test_dns_unit_is_hardened() -> None:
    service = load_unit(DNS_UNIT)["Service"]
    assert service["ProtectSystem"] == "strict" and service["NoNewPrivileges"] == "yes"
    assert service["CapabilityBoundingSet"] == ""  # it needs none
    assert "ReadWritePaths" not in service  # it only reads the route table


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
@pytest.mark.parametrize("unit", [UNIT, DNS_UNIT], ids=lambda u: u.name)
def test_systemd_analyze_security(unit: Path, tmp_path: Path) -> None:
    copy = tmp_path / unit.name
    copy.write_text(
        "\n".join(
            "ExecStart=/bin/true" if line.startswith("ExecStart=") else line
            for line in unit.read_text().splitlines()
        )
    )
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if "--offline" in result.stderr:  # older systemd: no offline mode
        pytest.skip(result.stderr.strip())
    (line,) = [x for x in result.stdout.splitlines() if "Overall exposure level" in x]
    exposure = float(line.split(":")[1].split()[0])
    assert exposure <= 3.0, line  # README records the numbers (9.6 before hardening)
