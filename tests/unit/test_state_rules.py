"""State at rest: file modes, values sealed in the database file, where the vault key
lives, the schema-version guard, and backup/restore of the files."""

from __future__ import annotations

import grp
import io
import json
import os
import sqlite3
import stat
import tarfile
import time
from pathlib import Path

import pytest

from slipway import backup, runlock
from slipway.config import Settings
from slipway.errors import InvalidRequest, InvalidState, SlipwayError
from slipway.filemodes import StateAccess, secure_data_dir
from slipway.models import ServiceSpec
from slipway.records import Revision, Service
from slipway.store import Store, StoreError, sealed_sample
from slipway.store import schema as store_schema
from slipway.store.sealed import open_maps, seal_maps
from slipway.vault import Vault, open_vault

SECRET = "sk_live_PLANTED0123456789"
HOOK = "https://hooks.slack.com/services/T000/B000/PLANTEDslackTOKEN"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def image_spec(env: dict[str, str]) -> ServiceSpec:
    return ServiceSpec.from_create(
        {
            "ServiceName": "hello",
            "SourceConfiguration": {
                "ImageRepository": {
                    "ImageIdentifier": "127.0.0.1:5000/hello:latest",
                    "ImageRepositoryType": "ECR_PUBLIC",
                    "ImageConfiguration": {"Port": "8080", "RuntimeEnvironmentVariables": env},
                }
            },
        }
    )


def service(spec: ServiceSpec) -> Service:
    return Service(
        id="s1",
        name="hello",
        arn="arn:aws:apprunner:us-east-1:000000000000:service/hello/s1",
        hostname="hello",
        status="RUNNING",
        spec=spec,
        created_at=1.0,
        updated_at=1.0,
    )


def file_bytes(db: Path) -> bytes:
    return b"".join(
        Path(f"{db}{s}").read_bytes() for s in ("", "-wal") if Path(f"{db}{s}").exists()
    )


@pytest.fixture()
def vault(tmp_path: Path) -> Vault:
    return Vault(tmp_path / "conf" / "vault.key")


# -- sealed values ------------------------------------------------------------------


def test_env_maps_are_sealed_wherever_they_sit_and_open_again(vault: Vault) -> None:
    value = {
        "spec": {"source": {"image": {"env": {"A": SECRET}}}},
        "list": [{"RuntimeEnvironmentVariables": {"B": SECRET}}],
        "env": {},
    }
    sealed = seal_maps(value, vault)
    assert SECRET not in json.dumps(sealed)
    assert sealed["env"] == {}  # nothing to hide
    assert seal_maps(sealed, vault) == sealed  # already sealed stays as it is
    assert open_maps(sealed, vault) == value


def test_env_values_notify_urls_and_usernames_never_reach_the_file(
    tmp_path: Path, vault: Vault
) -> None:
    db = tmp_path / "data" / "slipway.db"
    store = Store(db, vault)
    spec = image_spec({"API_KEY": SECRET})
    store.insert_service(service(spec))
    store.add_revision(
        Revision("s1", "sha256:" + "1" * 64, "img", "op1", {"env": {"API_KEY": SECRET}}, 1.0)
    )
    store.insert_notify_target(
        {
            "id": "t1",
            "url": HOOK,
            "pattern": {},
            "secret": vault.seal("s" * 32),
            "format": "slack",
            "created_at": 1.0,
            "source": "api",
        }
    )
    store.put_registry_credentials(
        {"host": "r.example", "username": "planted-user", "password": "x", "updated_at": 1.0}
    )
    raw = file_bytes(db)
    for clear in (SECRET, "hooks.slack.com", "planted-user"):
        assert clear.encode() not in raw
    again = Store(db, vault)
    assert again.get_service("s1").spec.source.image.env == {"API_KEY": SECRET}
    assert again.list_revisions("s1")[0].detail["env"] == {"API_KEY": SECRET}
    assert again.get_notify_target("t1")["url"] == HOOK
    assert [t["url"] for t in again.list_notify_targets()] == [HOOK]
    assert again.get_registry_credentials("r.example")["username"] == "planted-user"


def test_the_migration_seals_what_an_older_version_kept_clear(
    tmp_path: Path, vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    every = list(store_schema.MIGRATIONS)
    sealing = every.index(next(m for m in every if isinstance(m, store_schema.WithVault)))
    monkeypatch.setattr(store_schema, "MIGRATIONS", every[:sealing])
    db = tmp_path / "old.db"
    old = Store(db, vault)
    spec = image_spec({"API_KEY": SECRET}).to_dict()
    old.db["services"].insert(
        {**service(image_spec({})).to_row(), "spec": json.dumps(spec)}, replace=True
    )
    old.db["notify_targets"].insert({"id": "t1", "url": HOOK, "secret": "x", "source": "api"})
    old.db["registry_credentials"].insert({"host": "h", "username": "planted-user"})
    old.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert SECRET.encode() in file_bytes(db)
    monkeypatch.setattr(store_schema, "MIGRATIONS", every)
    new = Store(db, vault)
    new.db.execute("VACUUM")  # the clear pages go too
    new.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw = file_bytes(db)
    for clear in (SECRET, "hooks.slack.com", "planted-user"):
        assert clear.encode() not in raw
    assert new.get_service("s1").spec.source.image.env == {"API_KEY": SECRET}
    assert new.get_notify_target("t1")["url"] == HOOK
    assert new.get_registry_credentials("h")["username"] == "planted-user"


def test_a_database_newer_than_the_code_is_refused(tmp_path: Path, vault: Vault) -> None:
    db = tmp_path / "slipway.db"
    Store(db, vault).set_meta("schema_version", str(len(store_schema.MIGRATIONS) + 1))
    with pytest.raises(StoreError, match="newer than this slipway"):
        Store(db, vault)


# -- the vault key --------------------------------------------------------------------


def test_an_old_key_beside_the_database_is_moved(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    old = Vault(tmp_path / "data" / "vault.key")
    token = old.seal("x")
    new_path = tmp_path / "conf" / "vault.key"
    vault = open_vault(new_path, tmp_path / "data" / "vault.key", token)
    assert vault.open(token) == "x"
    assert not (tmp_path / "data" / "vault.key").exists()
    assert mode(new_path) == 0o600
    assert "vault key moved" in caplog.text


def test_sealed_values_without_their_key_refuse_to_start(tmp_path: Path, vault: Vault) -> None:
    db = tmp_path / "data" / "slipway.db"
    Store(db, vault).insert_access_key(
        {"id": "K", "secret": vault.seal("s"), "created_at": 1.0, "description": ""}
    )
    sample = sealed_sample(db)
    assert sample is not None
    missing = tmp_path / "elsewhere" / "vault.key"
    with pytest.raises(SlipwayError, match=f"vault key {missing} is missing"):
        open_vault(missing, tmp_path / "data" / "vault.key", sample)
    assert not missing.exists()
    Vault(tmp_path / "other.key")  # a key, but not this database's
    with pytest.raises(SlipwayError, match="does not open"):
        open_vault(tmp_path / "other.key", tmp_path / "data" / "vault.key", sample)
    assert sealed_sample(tmp_path / "none.db") is None


def test_two_different_keys_are_refused(tmp_path: Path) -> None:
    Vault(tmp_path / "a.key")
    Vault(tmp_path / "b.key")
    with pytest.raises(SlipwayError, match="two different vault keys"):
        open_vault(tmp_path / "a.key", tmp_path / "b.key", None)


# -- file modes -------------------------------------------------------------------------


def test_existing_files_are_made_owner_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "logs" / "svc").mkdir(parents=True)
    (data / "logs" / "svc" / "events.log").write_text("x")
    (data / "slipway.db").write_text("")
    script = data / "builds" / "run.sh"
    script.parent.mkdir()
    script.write_text("")
    for path in (data, data / "logs", data / "logs" / "svc"):
        path.chmod(0o755)
    for path in (data / "logs" / "svc" / "events.log", data / "slipway.db"):
        path.chmod(0o644)
    script.chmod(0o755)
    access_log = data / "caddy" / "access.log"
    secure_data_dir(data, StateAccess(), route_table=data / "routes.json", access_log=access_log)
    assert mode(data) == mode(data / "logs") == mode(data / "logs" / "svc") == 0o700
    assert mode(data / "logs" / "svc" / "events.log") == mode(data / "slipway.db") == 0o600
    assert mode(script) == 0o700
    assert mode(access_log) == 0o600  # made before Caddy opens it


def test_a_state_group_shares_what_caddy_and_the_responder_need(tmp_path: Path) -> None:
    group = grp.getgrgid(os.getegid()).gr_name
    data = tmp_path / "data"
    data.mkdir()
    (data / "routes.json").write_text("{}")
    access_log = data / "caddy" / "access.log"
    secure_data_dir(
        data, StateAccess(group), route_table=data / "routes.json", access_log=access_log
    )
    assert mode(data) == 0o710
    assert mode(data / "caddy") == 0o2770
    assert mode(data / "routes.json") == 0o640
    assert not access_log.exists()  # Caddy makes it, as its own user


def test_nonsense_state_groups_are_refused_by_name() -> None:
    with pytest.raises(InvalidRequest, match="state_group: 'No Such' is not a group name"):
        StateAccess("No Such").check()
    with pytest.raises(InvalidRequest, match="state_group: no group 'slipway-nosuch'"):
        StateAccess("slipway-nosuch").check()


def test_the_route_table_is_owner_only(tmp_path: Path) -> None:
    from slipway.routing.routedns import RouteTable

    table = RouteTable(tmp_path / "routes.json")
    table.write({"a.route.slipway.": ["127.77.0.1"]})
    assert mode(tmp_path / "routes.json") == 0o600


# -- backup and restore -----------------------------------------------------------------


def host(root: Path) -> tuple[Settings, Path]:
    settings = Settings(data_dir=root / "data", config_dir=root / "conf")
    return settings, root / "conf" / "slipway.yaml"


def seeded(root: Path) -> tuple[Settings, Path]:
    settings, config = host(root)
    vault = Vault(settings.vault_key)
    store = Store(settings.db_path, vault)
    store.insert_service(service(image_spec({"API_KEY": SECRET})))
    store.db.close()  # not left to the garbage collector, whose checkpoint rewrites the file
    config.write_text("base_domain: localhost\n")
    settings.credentials_file.write_text("[slipway]\n")
    return settings, config


def test_backup_then_restore_brings_the_state_back(tmp_path: Path) -> None:
    settings, config = seeded(tmp_path / "a")
    archive = tmp_path / "host.tar.gz"
    manifest = backup.create(settings, config, archive)
    assert mode(archive) == 0o600
    assert manifest["schema_version"] == len(store_schema.MIGRATIONS)
    assert "images are not included" in manifest["not_included"]
    with tarfile.open(archive) as tar:
        assert set(tar.getnames()) == set(backup.MEMBERS)

    fresh, fresh_config = host(tmp_path / "b")
    backup.restore(fresh, fresh_config, archive)
    assert mode(fresh.vault_key) == mode(fresh.db_path) == 0o600
    assert fresh_config.read_text() == config.read_text()
    restored = Store(fresh.db_path, Vault(fresh.vault_key))
    assert restored.get_service("s1").spec.source.image.env == {"API_KEY": SECRET}


def state_of(settings: Settings, config: Path) -> dict[str, bytes]:
    return {
        str(p): p.read_bytes()
        for p in (settings.db_path, settings.vault_key, config, settings.credentials_file)
    }


def test_restore_refuses_what_is_no_backup_and_changes_nothing(tmp_path: Path) -> None:
    settings, config = seeded(tmp_path)
    before = state_of(settings, config)
    not_tar = tmp_path / "notes.txt"
    not_tar.write_text("hello")
    other_tar = tmp_path / "other.tar.gz"
    with tarfile.open(other_tar, "w:gz") as tar:
        tar.add(not_tar, arcname="notes.txt")
    for bad in (not_tar, other_tar):
        with pytest.raises(InvalidRequest, match="is not a slipway backup"):
            backup.restore(settings, config, bad)
    assert state_of(settings, config) == before


def test_restore_refuses_a_backup_of_a_newer_version(tmp_path: Path) -> None:
    settings, config = seeded(tmp_path / "a")
    archive = tmp_path / "new.tar.gz"
    backup.create(settings, config, archive)
    newer = len(store_schema.MIGRATIONS) + 1
    with tarfile.open(archive) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    staged = tmp_path / "staged.db"
    staged.write_bytes(files["slipway.db"])
    with sqlite3.connect(staged) as conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(newer),))
    files["slipway.db"] = staged.read_bytes()
    manifest = json.loads(files["manifest.json"])
    files["manifest.json"] = json.dumps({**manifest, "schema_version": newer}).encode()
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), int(time.time())
            tar.addfile(info, io.BytesIO(data))

    target, target_config = seeded(tmp_path / "b")
    before = state_of(target, target_config)
    with pytest.raises(InvalidRequest, match="from a newer slipway"):
        backup.restore(target, target_config, archive)
    assert state_of(target, target_config) == before


def test_restore_waits_for_the_agent_to_stop(tmp_path: Path) -> None:
    settings, config = seeded(tmp_path)
    archive = tmp_path / "b.tar.gz"
    backup.create(settings, config, archive)
    lock = runlock.hold(settings.data_dir)
    try:
        assert runlock.running(settings.data_dir)
        with pytest.raises(InvalidState, match="another slipway agent"):
            runlock.hold(settings.data_dir)
        with pytest.raises(InvalidState, match="stop it before a restore"):
            backup.restore(settings, config, archive)
    finally:
        lock.close()
    assert not runlock.running(settings.data_dir)
    backup.restore(settings, config, archive)
