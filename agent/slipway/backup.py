"""Backup and restore of a host's state: one tar file with what a restore needs.

A backup holds a consistent copy of the database (SQLite's online backup API, taken
while the agent runs), the vault key that opens its sealed values, the settings file
and the root credentials file, with a manifest saying what it is. It does not hold
container images: a restored host runs each service's live revision again from its
recorded image where that image still exists (in its registry, or on this host for
built code revisions); otherwise the next deployment rebuilds or pulls it.

Both work on the local files directly, as root (or the data's owner): the one place
outside the agent that opens its files, because a restore must happen while no agent
runs, and because an API that hands out the vault key would be a way to steal it.
A restore checks the whole file first (a slipway backup, of a schema this code
knows, a database that passes SQLite's check) and changes nothing when it refuses.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from . import runlock
from .config import Settings
from .errors import InvalidRequest, InvalidState, SlipwayError
from .store.backup import copy_database, database_version, newest_version

FORMAT = "slipway-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DATABASE = "slipway.db"
KEY = "vault.key"
SETTINGS = "slipway.yaml"
CREDENTIALS = "credentials"
MEMBERS = {MANIFEST, DATABASE, KEY, SETTINGS, CREDENTIALS}
MAX_SMALL_FILE = 1024 * 1024  # the manifest, the key, settings, credentials
NOT_INCLUDED = (
    "container images are not included: a restore runs each service's live revision"
    " again from its recorded image where it still exists"
)


def create(settings: Settings, settings_path: Path, dest: Path) -> dict[str, Any]:
    """Write a backup of this host to ``dest`` (mode 0600); returns its manifest."""
    _require_owner(settings.data_dir)
    if not settings.vault_key.exists():
        raise SlipwayError(f"no vault key at {settings.vault_key}: has the agent run here?")
    dest = dest.resolve()
    with tempfile.TemporaryDirectory(prefix=".slipway-backup-", dir=dest.parent) as tmp:
        database = Path(tmp) / DATABASE
        schema_version = copy_database(settings.db_path, database)
        files = {DATABASE: database, KEY: settings.vault_key}
        for name, path in ((SETTINGS, settings_path), (CREDENTIALS, settings.credentials_file)):
            if path.exists():
                files[name] = path
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "schema_version": schema_version,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "host": socket.gethostname(),
            "files": sorted(files),
            "not_included": NOT_INCLUDED,
        }
        partial = Path(tmp) / "backup.tar.gz"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out, tarfile.open(fileobj=out, mode="w:gz") as tar:
            _add_bytes(tar, MANIFEST, json.dumps(manifest, indent=1).encode())
            for name, path in sorted(files.items()):
                _add_bytes(tar, name, path.read_bytes())
        os.replace(partial, dest)
    return manifest


def restore(settings: Settings, settings_path: Path, archive: Path) -> dict[str, Any]:
    """Bring this host's state back to ``archive``; the agent must be stopped. Refused,
    with nothing changed, for a file that is not a slipway backup or is from a newer
    version; returns the manifest."""
    _require_owner(settings.data_dir)
    if runlock.running(settings.data_dir):
        raise InvalidState(f"an agent runs on {settings.data_dir}: stop it before a restore")
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with tempfile.TemporaryDirectory(prefix=".slipway-restore-", dir=settings.data_dir) as tmp:
        staged = Path(tmp)
        manifest = _unpack(archive, staged)
        _check_database(archive, staged / DATABASE, manifest)
        # Checked: from here on, replace.
        for suffix in ("-wal", "-shm"):
            Path(f"{settings.db_path}{suffix}").unlink(missing_ok=True)
        os.replace(staged / DATABASE, settings.db_path)
        _place(staged / KEY, settings.vault_key)
        (settings.data_dir / KEY).unlink(missing_ok=True)  # an old key there would clash
        if (staged / SETTINGS).exists():
            _place(staged / SETTINGS, settings_path)
        if (staged / CREDENTIALS).exists():
            _place(staged / CREDENTIALS, settings.credentials_file)
    return manifest


def _unpack(archive: Path, staged: Path) -> dict[str, Any]:
    """Every member of a slipway backup into ``staged`` (0600), and its manifest."""
    refused = f"{archive} is not a slipway backup"
    try:
        tar = tarfile.open(archive, mode="r:*")  # noqa: SIM115 - closed below
    except (tarfile.TarError, OSError) as exc:
        raise InvalidRequest(f"{refused}: {exc}") from exc
    with tar:
        try:
            members = {m.name: m for m in tar.getmembers()}
            if set(members) - MEMBERS or not {MANIFEST, DATABASE, KEY} <= set(members):
                raise InvalidRequest(f"{refused}: its files are {sorted(members)}")
            if any(not m.isfile() for m in members.values()):
                raise InvalidRequest(f"{refused}: it holds something that is not a file")
            manifest = _manifest(tar, members[MANIFEST], refused)
            for name, member in members.items():
                if name != DATABASE and member.size > MAX_SMALL_FILE:
                    raise InvalidRequest(f"{refused}: {name} is {member.size} bytes")
                source = tar.extractfile(member)
                fd = os.open(staged / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with source, os.fdopen(fd, "wb") as out:
                    shutil.copyfileobj(source, out)
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise InvalidRequest(f"{refused}: {exc}") from exc
    return manifest


def _manifest(tar: tarfile.TarFile, member: tarfile.TarInfo, refused: str) -> dict[str, Any]:
    if member.size > MAX_SMALL_FILE:
        raise InvalidRequest(f"{refused}: its manifest is {member.size} bytes")
    try:
        manifest = json.loads(tar.extractfile(member).read())
    except ValueError as exc:
        raise InvalidRequest(f"{refused}: its manifest is not JSON") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InvalidRequest(f"{refused}: its manifest is not a {FORMAT} manifest")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise InvalidRequest(
            f"{refused} this version can read: format {version!r}, newer than {FORMAT_VERSION}"
        )
    return manifest


def _check_database(archive: Path, database: Path, manifest: dict[str, Any]) -> None:
    try:
        version = database_version(database)
    except SlipwayError as exc:
        raise InvalidRequest(f"{archive}: {exc.message}") from exc
    if version != manifest.get("schema_version"):
        raise InvalidRequest(
            f"{archive}: its database is schema {version}, its manifest says"
            f" {manifest.get('schema_version')!r}"
        )
    if version > newest_version():
        raise InvalidRequest(
            f"{archive} is from a newer slipway: schema {version}, this one knows up to"
            f" {newest_version()}; restore it with that version"
        )


def _place(source: Path, dest: Path) -> None:
    """Put ``source`` at ``dest``, mode 0600, replacing it in one step."""
    dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = dest.with_name(f".{dest.name}.restore")
    shutil.copyfile(source, partial)
    os.chmod(partial, 0o600)
    os.replace(partial, dest)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o600
    info.mtime = int(time.time())
    tar.addfile(info, io.BytesIO(data))


def _require_owner(data_dir: Path) -> None:
    """Root, or the user whose data it is: backups hold the vault key."""
    uid = os.geteuid()
    if uid != 0 and data_dir.exists() and data_dir.stat().st_uid != uid:
        raise InvalidState(f"{data_dir} is not yours: run this as root")
