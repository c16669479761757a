"""Who may do what: principals, the policies attached to them, and their access keys.

A key belongs to one principal; a request signed with it is allowed when the
principal's policies allow it (``policies.evaluate``). A key is ``Active`` or
``Inactive`` and may expire; an inactive, deleted or expired key is refused on the
very next request, because every request reads its key's row (one primary-key
lookup). Only the last-used time is written lazily: at most once per
``key_last_used_interval`` per key, so a busy key costs no write per request.
"""

from __future__ import annotations

import functools
import json
import re
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from . import keys, policies
from .access_limits import AccessLimits, parse_expiry
from .errors import AccessDenied, InvalidRequest, ResourceNotFound
from .policies import AccessRequest
from .store import Store
from .vault import Vault

ROOT = "root"
ACTIVE, INACTIVE = "Active", "Inactive"
_NAME = re.compile(r"[A-Za-z0-9+=,.@_-]{1,64}")


@functools.lru_cache(maxsize=256)
def _parsed(text: str, region: str, account: str) -> policies.Policy:
    """A stored document, parsed once per process (every request is judged by them)."""
    return policies.loads(text, region=region, account=account)


def _check_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidRequest(f"{what}: {name!r} is not 1-64 of A-Z a-z 0-9 +=,.@_-")
    return name


class Access:
    def __init__(
        self,
        store: Store,
        vault: Vault,
        limits: AccessLimits,
        *,
        region: str,
        account: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        limits.check()
        self.store = store
        self.vault = vault
        self.limits = limits
        self.region = region
        self.account = account
        self.clock = clock
        self._noted: dict[str, float] = {}
        self._lock = threading.Lock()

    # -- keys ------------------------------------------------------------------------

    def _usable(self, row: dict[str, Any] | None) -> bool:
        return (
            row is not None
            and row["status"] == ACTIVE
            and (row["expires_at"] is None or row["expires_at"] > self.clock())
        )

    def lookup_secret(self, key_id: str) -> str | None:
        """The secret of a key that may sign now; None when unknown, inactive or expired
        (SigV4 then answers UnrecognizedClientException, as AWS does)."""
        row = self.store.get_access_key(key_id)
        return self.vault.open(row["secret"]) if self._usable(row) else None

    def note_used(self, key_id: str) -> None:
        """Record a key's use, at most once per ``last_used_interval``."""
        now = self.clock()
        with self._lock:
            if now - self._noted.get(key_id, float("-inf")) < self.limits.last_used_interval:
                return
            self._noted[key_id] = now
        self.store.update_access_key(key_id, last_used_at=now)

    def _key(self, key_id: str) -> dict[str, Any]:
        row = self.store.get_access_key(key_id)
        if row is None:
            raise ResourceNotFound(f"AccessKeyId: no key {key_id}")
        return row

    def create_key(
        self, principal: str, description: str = "", expires: str | None = None
    ) -> dict[str, Any]:
        """A new key for ``principal``; its secret is in the answer and nowhere else."""
        self._principal(principal)
        now = self.clock()
        key_id = keys.new_key_id()
        secret = secrets.token_urlsafe(30)[:40]
        expires_at = now + parse_expiry(expires) if expires else None
        self.store.insert_access_key(
            {
                "id": key_id,
                "secret": self.vault.seal(secret),
                "created_at": now,
                "description": description,
                "principal": principal,
                "status": ACTIVE,
                "expires_at": expires_at,
            }
        )
        return {
            "AccessKeyId": key_id,
            "SecretAccessKey": secret,
            "Principal": principal,
            "ExpiresAt": expires_at,
        }

    def list_keys(self, principal: str | None = None) -> list[dict[str, Any]]:
        return self.store.list_access_keys(principal)

    def set_key_status(self, key_id: str, status: str) -> dict[str, Any]:
        if status not in (ACTIVE, INACTIVE):
            raise InvalidRequest(f"Status: must be {ACTIVE} or {INACTIVE}")
        self._key(key_id)
        self.store.update_access_key(key_id, status=status)
        return self._key(key_id)

    def delete_key(self, key_id: str) -> None:
        if not self.store.delete_access_key(key_id):
            raise ResourceNotFound(f"AccessKeyId: no key {key_id}")

    def rotate_key(self, key_id: str) -> dict[str, Any]:
        """A new key for the same principal, with what remained of the old one's life;
        the old one is made Inactive (delete it once nothing uses it, or enable it back)."""
        old = self._key(key_id)
        remaining = None
        if old["expires_at"] is not None:
            remaining = f"{max(1, int((old['expires_at'] - self.clock()) // 60))}m"
        new = self.create_key(old["principal"], old["description"] or "", remaining)
        self.store.update_access_key(key_id, status=INACTIVE)
        return new

    def ensure_root_key(self) -> tuple[str, str] | None:
        """On first start, a key for ``root`` (an administrator); None if keys exist."""
        if self.store.count_access_keys():
            return None
        return self.recover_root()

    def recover_root(self) -> tuple[str, str]:
        """A new ``root`` key, whatever else exists: what a host's owner uses when the
        credentials file is lost (``slipway keys recover-root``, local, on the store)."""
        if self.store.get_principal(ROOT) is None:
            self.create_principal(ROOT)
        self.attach_policy(ROOT, "administrator")
        created = self.create_key(ROOT, "root")
        return created["AccessKeyId"], created["SecretAccessKey"]

    # -- principals and their policies -------------------------------------------------

    def _principal(self, name: str) -> dict[str, Any]:
        row = self.store.get_principal(name)
        if row is None:
            raise ResourceNotFound(f"Principal: no principal {name}")
        return row

    def create_principal(self, name: str) -> dict[str, Any]:
        _check_name(name, "Principal")
        if self.store.get_principal(name) is not None:
            raise InvalidRequest(f"Principal: {name} already exists")
        self.store.insert_principal(name, self.clock())
        return self._principal(name)

    def list_principals(self) -> list[dict[str, Any]]:
        """Every principal with its policy names and key ids."""
        out = []
        for row in self.store.list_principals():
            names = [p["name"] for p in self.store.principal_policies(row["name"])]
            key_ids = [k["id"] for k in self.store.list_access_keys(row["name"])]
            out.append({**row, "policies": names, "keys": key_ids})
        return out

    def attach_policy(self, principal: str, name: str, document: Any = None) -> None:
        """Attach a ready-made policy by name, or ``document`` (an object, or its JSON
        text) under ``name``; the document is checked whole before anything is stored."""
        self._principal(principal)
        _check_name(name, "PolicyName")
        if document is None:
            if name not in policies.READY_MADE:
                raise InvalidRequest(
                    f"PolicyName: {name} is not a ready-made policy "
                    f"({', '.join(policies.READY_MADE)}); pass a PolicyDocument"
                )
            document = policies.READY_MADE[name]
        if isinstance(document, str):  # as IAM takes it: the document's JSON text
            if len(document) > self.limits.policy_max_bytes:
                raise InvalidRequest(
                    f"PolicyDocument: {len(document)} bytes, more than policy_max_bytes "
                    f"({self.limits.policy_max_bytes})"
                )
            try:
                document = json.loads(document)
            except ValueError as exc:
                raise InvalidRequest(f"PolicyDocument: not valid JSON: {exc}") from exc
        size = len(json.dumps(document))
        if size > self.limits.policy_max_bytes:
            raise InvalidRequest(
                f"PolicyDocument: {size} bytes, more than policy_max_bytes "
                f"({self.limits.policy_max_bytes})"
            )
        policies.parse(document, region=self.region, account=self.account)
        self.store.put_principal_policy(principal, name, document, self.clock())

    def detach_policy(self, principal: str, name: str) -> None:
        self._principal(principal)
        if not self.store.delete_principal_policy(principal, name):
            raise ResourceNotFound(f"PolicyName: {principal} has no policy {name}")

    # -- decisions -----------------------------------------------------------------------

    def authorize(self, key_id: str, request: AccessRequest) -> None:
        """Raise ``AccessDenied`` unless the key's principal may make ``request``."""
        row = self.store.get_access_key(key_id)
        principal = row["principal"] if row else "unknown"
        documents = self.store.principal_policies(principal) if row else []
        parsed = [
            _parsed(json.dumps(p["document"], sort_keys=True), self.region, self.account)
            for p in documents
        ]
        decision = policies.evaluate(parsed, request)
        if decision == "Allow":
            return
        how = " with an explicit deny" if decision == "ExplicitDeny" else ""
        raise AccessDenied(
            f"User: arn:aws:iam::{self.account}:user/{principal} is not authorized to "
            f"perform: {request.action} on resource: {request.resource}{how}"
        )
