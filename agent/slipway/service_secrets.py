"""Secrets bound to services: a named value, sealed in the store by the vault, that only
the services it is granted to can read. A deployment resolves its references
(``RuntimeEnvironmentSecrets``, ``run.secrets``) here just before instances start; the
values go to the instances' environment and nowhere else (not the store in clear, not a
log, an event, an audit row, a build or an image).

A grant names a service, so a secret can be granted before its service exists; a
service deleted and created again under the same name reads what it was granted.
Revoking a grant stops the next deployment or replacement instance from reading the
value; instances already running keep the environment they started with.

Files in the host's secrets directory (``/etc/slipway/secrets/NAME``, the only source
of secrets before) are an import path: at start, each file whose name is no secret yet
becomes one, with no grants; after that the store holds it (``slipway secrets put``
replaces it, and the file is no longer read).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .builds import SecretRef
from .errors import InvalidRequest, ResourceNotFound
from .secretrefs import Pointer, SecretLimits, check_name, check_service_name, parse_reference
from .store import Store
from .vault import Vault

log = logging.getLogger("slipway.secrets")


class Secrets:
    def __init__(
        self,
        store: Store,
        vault: Vault,
        limits: SecretLimits,
        clock: Callable[[], float] = time.time,
    ) -> None:
        limits.check()
        self.store = store
        self.vault = vault
        self.limits = limits
        self.clock = clock

    # -- what the API offers: never a value out ------------------------------------

    def put(self, name: str, value: str, services: Iterable[str] = ()) -> dict[str, Any]:
        """Create or replace ``name``'s value, granting it to ``services`` too (grants
        already given stay). Everything is checked before anything is written."""
        check_name(name)
        if not isinstance(value, str):
            raise InvalidRequest(f"secret {name}: the value must be a string")
        self.limits.check_value(name, value)
        grants = [check_service_name(s) for s in services]
        created = self.store.put_secret(name, self.vault.seal(value), self.clock(), grants)
        return {**self._summary(name), "created": created}

    def list(self) -> list[dict[str, Any]]:
        return self.store.list_secrets()

    def grant(self, name: str, service: str) -> dict[str, Any]:
        self._row(name)
        self.store.grant_secret(name, check_service_name(service), self.clock())
        return self._summary(name)

    def revoke(self, name: str, service: str) -> dict[str, Any]:
        self._row(name)
        if not self.store.revoke_secret(name, check_service_name(service)):
            raise ResourceNotFound(f"secret {name} is not granted to service {service}")
        return self._summary(name)

    def delete(self, name: str) -> None:
        if not self.store.delete_secret(check_name(name)):
            raise ResourceNotFound(f"no secret named {name}")

    def _row(self, name: str) -> dict[str, Any]:
        row = self.store.get_secret(check_name(name))
        if row is None:
            raise ResourceNotFound(f"no secret named {name}")
        return row

    def _summary(self, name: str) -> dict[str, Any]:
        row = self._row(name)
        return {k: row[k] for k in ("name", "grants", "created_at", "updated_at")}

    # -- what a deployment reads ------------------------------------------------------

    def resolve(self, service: str, refs: Iterable[SecretRef]) -> dict[str, str]:
        """The environment ``refs`` give an instance of ``service``: each variable's
        value, read from its secret only if that secret is granted to ``service``. An
        error names the variable and the secret, never a value."""
        env = {}
        for ref in refs:
            try:
                pointer = parse_reference(ref.value_from)
            except InvalidRequest as exc:
                raise InvalidRequest(f"{ref.name}: {exc.message}") from exc
            row = self._find(pointer)
            if row is None:
                named = " or ".join(pointer.names)
                raise ResourceNotFound(
                    f"{ref.name}: secret {named} does not exist; create it with"
                    f" `slipway secrets put {pointer.names[-1]} --service {service}`"
                )
            if service not in row["grants"]:
                raise InvalidRequest(
                    f"{ref.name}: secret {row['name']} is not granted to service {service};"
                    f" grant it with `slipway secrets grant {row['name']} {service}`"
                )
            env[ref.name] = _member(row["name"], self.vault.open(row["value"]), pointer)
        return env

    def _find(self, pointer: Pointer) -> dict[str, Any] | None:
        for name in pointer.names:
            row = self.store.get_secret(name)
            if row is not None:
                return row
        return None

    # -- the files of the host's secrets directory -------------------------------------

    def import_files(self, directory: Path) -> list[str]:
        """Each file of ``directory`` whose name is no secret yet becomes one, with no
        grants; the names imported. A file that cannot be a secret is said and skipped."""
        try:
            paths = sorted(directory.iterdir()) if directory.is_dir() else []
        except OSError as exc:
            log.warning("secret files in %s not imported: %s", directory, exc.strerror)
            return []
        imported = []
        for path in paths:
            if not path.is_file():
                continue
            try:
                check_name(path.name)
                if path.stat().st_size > self.limits.max_bytes + 2:  # a trailing newline
                    raise InvalidRequest(f"larger than secret_max_bytes ({self.limits.max_bytes})")
                value = path.read_text().rstrip("\n")
                self.limits.check_value(path.name, value)
            except (InvalidRequest, OSError, UnicodeDecodeError) as exc:
                reason = exc.message if isinstance(exc, InvalidRequest) else type(exc).__name__
                log.warning("secret file %s not imported: %s", path, reason)
                continue
            row = self.store.get_secret(path.name)
            if row is None:
                self.store.put_secret(path.name, self.vault.seal(value), self.clock(), [])
                imported.append(path.name)
            elif self.vault.open(row["value"]) != value:
                log.warning(
                    "secret file %s differs from the stored secret %s, which is kept;"
                    " `slipway secrets put` replaces it",
                    path,
                    path.name,
                )
        if imported:
            log.info(
                "imported %d secret file(s) from %s with no grants: %s; grant them with"
                " `slipway secrets grant NAME SERVICE`",
                len(imported),
                directory,
                ", ".join(imported),
            )
        return imported


def _member(name: str, value: str, pointer: Pointer) -> str:
    """The whole value, or the member ``pointer.json_key`` of a JSON object value."""
    key = pointer.json_key
    if key is None:
        return value
    try:
        document = json.loads(value)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise InvalidRequest(f"secret {name} is not a JSON object, so it has no key {key!r}")
    if key not in document:
        raise InvalidRequest(f"secret {name} has no JSON key {key!r}")
    member = document[key]
    return member if isinstance(member, str) else json.dumps(member)
