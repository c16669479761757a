"""State at rest, end to end: after a fresh start every file the agent keeps is its own
alone; a planted secret-looking environment value and a Slack webhook URL never reach
the database file (WAL included), the agent's logs or the audit trail in clear, while
DescribeService still answers the variable; and a backup taken while the agent runs
brings a wiped host back (services, revisions, keys, connections, domains, secrets,
each service serving again through Caddy), while a file that is no backup, or one of a
newer version, is refused with the state untouched."""

from __future__ import annotations

import io
import json
import shutil
import sqlite3
import stat
import tarfile
import time
import uuid
from pathlib import Path

import pytest

from testkit.harness import image_source, service_containers, wait_for, wait_status

pytestmark = pytest.mark.e2e

PLANTED_ENV = f"sk_live_{uuid.uuid4().hex}"
SLACK_TOKEN = f"XOXB{uuid.uuid4().hex}"
SLACK_URL = f"https://hooks.slack.com/services/T0PLANTED/B0PLANTED/{SLACK_TOKEN}"
SECRET_VALUE = f"secret-{uuid.uuid4().hex}"
# A pattern no event matches: the target is stored, nothing is ever sent to Slack.
NEVER = {"source": ["slipway.test.never"]}


def AGENT_SETTINGS(request: pytest.FixtureRequest) -> dict:  # noqa: N802 - conftest's name
    return {
        "tls_issuer": "internal",
        "https_port": request.getfixturevalue("caddy_server").https_port,
        "dns_resolver": request.getfixturevalue("dns_server").address,
        "metrics_interval": 0.5,
        # A pool of the module's own: services come and go on a wiped host here, and
        # other modules' agents keep the default pool's /24s busy meanwhile.
        "network_pool": "10.214.0.0/16",
    }


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def data_dir(agent) -> Path:
    return Path(agent.env["SLIPWAY_DATA_DIR"])


def database_bytes(agent) -> bytes:
    db = data_dir(agent) / "slipway.db"
    return b"".join(
        Path(f"{db}{s}").read_bytes() for s in ("", "-wal") if Path(f"{db}{s}").exists()
    )


def log_bytes(agent) -> bytes:
    """The agent's own log and every log stream it keeps."""
    logs = [agent.root / "agent.log", *sorted((data_dir(agent) / "logs").rglob("*"))]
    return b"".join(p.read_bytes() for p in logs if p.is_file())


def image_service(client, name: str, image: str, **configuration) -> str:
    source = image_source(image)
    source["ImageRepository"]["ImageConfiguration"].update(configuration)
    return client.create_service(ServiceName=name, SourceConfiguration=source)["Service"][
        "ServiceArn"
    ]


def test_a_fresh_agent_keeps_its_files_to_itself(agent, hello_image):
    client = agent.client()
    arn = image_service(client, "modes", hello_image)
    wait_status(client, arn, "RUNNING")
    assert agent.get("modes").status_code == 200
    agent.access_log_read()  # Caddy has written its access log

    root = data_dir(agent)
    assert mode(root) == 0o700
    for name in ("slipway.db", "slipway.db-wal", "slipway.db-shm", "routes.json"):
        assert mode(root / name) == 0o600, name
    assert mode(root / "caddy" / "access.log") == 0o600
    assert any(p.is_file() for p in (root / "logs").rglob("*"))
    shared = [f"{p} {mode(p):o}" for p in root.rglob("*") if not p.is_symlink() and mode(p) & 0o077]
    assert shared == []
    key = Path(agent.env["SLIPWAY_CONFIG_DIR"]) / "vault.key"
    assert mode(key) == 0o600
    assert not (root / "vault.key").exists()


def test_env_values_and_webhook_urls_are_never_stored_in_clear(agent, hello_image, tmp_path):
    client = agent.client()
    arn = image_service(
        client, "sealed", hello_image, RuntimeEnvironmentVariables={"STRIPE_KEY": PLANTED_ENV}
    )
    pattern = tmp_path / "pattern.json"
    pattern.write_text(json.dumps(NEVER))
    agent.cli("notify", "add", SLACK_URL, "--pattern", str(pattern), "--slack")
    wait_status(client, arn, "RUNNING")
    assert agent.get("sealed", "/env/STRIPE_KEY").text.strip() == PLANTED_ENV
    # An update: the value travels in the operation and the new revision too.
    source = image_source(hello_image)
    source["ImageRepository"]["ImageConfiguration"]["RuntimeEnvironmentVariables"] = {
        "STRIPE_KEY": PLANTED_ENV,
        "MODE": "second",
    }
    client.update_service(ServiceArn=arn, SourceConfiguration=source)
    wait_for(lambda: agent.get("sealed", "/env/MODE").text.strip() == "second", 90, "update")
    wait_status(client, arn, "RUNNING")

    described = client.describe_service(ServiceArn=arn)["Service"]
    configuration = described["SourceConfiguration"]["ImageRepository"]["ImageConfiguration"]
    assert configuration["RuntimeEnvironmentVariables"]["STRIPE_KEY"] == PLANTED_ENV
    assert SLACK_URL in agent.cli("notify", "list").stdout

    audit = agent.cli("audit", "--json").stdout
    assert "CreateService" in audit and "UpdateService" in audit
    for where, text in (
        ("database", database_bytes(agent)),
        ("logs", log_bytes(agent)),
        ("audit", audit.encode()),
    ):
        assert PLANTED_ENV.encode() not in text, where
        assert SLACK_TOKEN.encode() not in text, where


def wipe(agent, service_ids: list[str]) -> None:
    """A host that lost its state: no agent, no data_dir, no key or config, no
    instances (their images stay in the registry)."""
    agent.kill()
    agent.stop_children()
    for service_id in service_ids:
        for container in service_containers(service_id):
            container.remove(force=True)
    shutil.rmtree(data_dir(agent))
    shutil.rmtree(agent.env["SLIPWAY_CONFIG_DIR"])


def state_files(agent) -> dict[str, bytes]:
    """What a restore would replace, to see that a refused one changed nothing."""
    conf = Path(agent.env["SLIPWAY_CONFIG_DIR"])
    paths = [data_dir(agent) / "slipway.db", conf / "vault.key", conf / "credentials"]
    return {str(p): p.read_bytes() for p in paths}


def newer_backup(backup: Path, dest: Path) -> Path:
    """``backup`` as a slipway of a newer schema would have written it."""
    with tarfile.open(backup) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    manifest = json.loads(files["manifest.json"])
    newer = manifest["schema_version"] + 1
    database = dest.with_suffix(".db")
    database.write_bytes(files["slipway.db"])
    with sqlite3.connect(database) as conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(newer),))
    conn.close()
    files["slipway.db"] = database.read_bytes()
    files["manifest.json"] = json.dumps({**manifest, "schema_version": newer}).encode()
    with tarfile.open(dest, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return dest


def test_backup_wipe_restore_brings_every_service_back(agent, hello_image, tmp_path):
    client = agent.client()
    agent.cli("secrets", "put", "db-password", "--service", "keeper", stdin=SECRET_VALUE)
    keeper = image_service(
        client,
        "keeper",
        hello_image,
        RuntimeEnvironmentVariables={"STRIPE_KEY": PLANTED_ENV},
        RuntimeEnvironmentSecrets={"DB_PASSWORD": "db-password"},
    )
    other = image_service(client, "other", hello_image)
    for arn in (keeper, other):
        wait_status(client, arn, "RUNNING")
    client.associate_custom_domain(ServiceArn=keeper, DomainName="keeper.example.test")
    client.create_connection(ConnectionName="github-kept", ProviderType="GITHUB")
    key = json.loads(agent.cli("keys", "create", "--json").stdout)
    revisions = agent.cli("revisions", "keeper", "--json").stdout
    services = {s["ServiceName"]: s for s in client.list_services()["ServiceSummaryList"]}

    backup = tmp_path / "host.tar.gz"
    made = agent.cli("backup", str(backup)).stdout
    assert "images are not included" in made
    assert mode(backup) == 0o600
    refused = agent.cli("restore", str(backup), ok=False)
    assert refused.returncode == 1 and "stop it before a restore" in refused.stderr

    # Refused restores, agent stopped: not a backup, a newer version; nothing changes.
    agent.kill()
    before = state_files(agent)
    not_backup = tmp_path / "notes.tar.gz"
    with tarfile.open(not_backup, "w:gz") as tar:
        tar.add(__file__, arcname="notes.py")
    for bad, reason in (
        (not_backup, "is not a slipway backup"),
        (newer_backup(backup, tmp_path / "newer.tar.gz"), "is from a newer slipway"),
    ):
        done = agent.cli("restore", str(bad), ok=False)
        assert done.returncode == 1 and reason in done.stderr, done.stderr
        assert state_files(agent) == before

    wipe(agent, [s["ServiceId"] for s in services.values()])
    agent.cli("restore", str(backup))
    agent.start()

    client = agent.client()
    for name in services:
        wait_for(lambda n=name: agent.get(n).status_code == 200, 120, f"{name} serving")
    assert agent.get("keeper", "/env/STRIPE_KEY").text.strip() == PLANTED_ENV
    assert agent.get("keeper", "/env/DB_PASSWORD").text.strip() == SECRET_VALUE
    again = {s["ServiceName"]: s for s in client.list_services()["ServiceSummaryList"]}
    assert {n: s["ServiceArn"] for n, s in again.items()} == {
        n: s["ServiceArn"] for n, s in services.items()
    }
    assert json.loads(agent.cli("revisions", "keeper", "--json").stdout) == json.loads(revisions)
    domains = client.describe_custom_domains(ServiceArn=keeper)["CustomDomains"]
    assert [d["DomainName"] for d in domains] == ["keeper.example.test"]
    connections = client.list_connections()["ConnectionSummaryList"]
    assert [c["ConnectionName"] for c in connections] == ["github-kept"]
    assert "db-password" in agent.cli("secrets", "list").stdout
    by_key = agent.client(key_id=key["AccessKeyId"], secret=key["SecretAccessKey"])
    assert len(by_key.list_services()["ServiceSummaryList"]) == len(services)


def test_the_vault_key_moves_out_of_data_dir_and_is_required(agent):
    """An older version's key beside the database is moved to the config dir at start;
    without it, a database with sealed values keeps the agent from starting."""
    key = Path(agent.env["SLIPWAY_CONFIG_DIR"]) / "vault.key"
    old_place = data_dir(agent) / "vault.key"
    agent.kill()
    key.rename(old_place)
    agent.start()
    assert key.exists() and not old_place.exists()
    assert mode(key) == 0o600
    assert f"vault key moved from {old_place} to {key}" in agent.log_text()
    agent.client().list_services()

    agent.kill()
    kept = key.with_name("vault.key.kept")
    key.rename(kept)
    with pytest.raises(AssertionError, match=f"the vault key {key} is missing"):
        agent.start()
    assert not key.exists()  # no new key was made over the old values
    kept.rename(key)
    agent.start()
    agent.client().list_services()
