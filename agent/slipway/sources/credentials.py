"""What images are pulled and watched with: one rule for the image resolver, the
deployments' pulls and the tag watches. ECR images use the login held for their host
(``slipway registries login``, sealed in the vault), else a token from ECR made with
the host's AWS credentials; ECR_PUBLIC images are pulled anonymously, as App Runner
does."""

from __future__ import annotations

import re
import time

from ..errors import InvalidRequest
from ..store import Store
from ..vault import Vault
from .ecr import EcrTokens
from .registry import ImageRef


class PullCredentials:
    def __init__(self, store: Store, vault: Vault, ecr: EcrTokens | None = None) -> None:
        self.store = store
        self.vault = vault
        self.ecr = ecr or EcrTokens()

    def login(self, host: str, username: str, password: str) -> None:
        if not re.fullmatch(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?", host):
            raise InvalidRequest(f"registry host {host!r} is not a host[:port]")
        if not username or not password:
            raise InvalidRequest("registry login needs a username and a password")
        self.store.put_registry_credentials(
            {
                "host": host,
                "username": username,
                "password": self.vault.seal(password),
                "updated_at": time.time(),
            }
        )

    def for_image(self, identifier: str, repository_type: str) -> tuple[str, str] | None:
        if repository_type != "ECR":
            return None
        return self.for_host(ImageRef.parse(identifier).registry)

    def for_host(self, host: str) -> tuple[str, str] | None:
        row = self.store.get_registry_credentials(host)
        if row:
            return row["username"], self.vault.open(row["password"])
        return self.ecr.credentials(host)
