"""Connections: credentials for a source provider, as App Runner keeps them.

CreateConnection leaves a connection PENDING_HANDSHAKE; on AWS the handshake is
a browser dance with GitHub, on a slipway host it is `slipway connections
authorize NAME` with a token or a GitHub App's id and key, checked against
GitHub before the connection becomes AVAILABLE. Credentials and the webhook
secret are sealed in the store and leave it only to sign a request or a clone.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

from .config import Settings
from .errors import InvalidRequest, InvalidState, QuotaExceeded, ResourceNotFound
from .sources.github import GitHub, token_refusal
from .sources.github_app import AppCredentials, TokenCache
from .sources.github_errors import GitHubError
from .store import Store
from .tags import tag_dict
from .vault import Vault


def normalize_url(url: str) -> str:
    """One spelling per repository (scheme, user, ``.git`` and host case aside), so a
    webhook's clone, html and ssh URLs match a service's RepositoryUrl in any form."""
    text = url.strip()
    if "://" in text:
        parts = urlsplit(text)
        host = parts.netloc.rsplit("@", 1)[-1].lower()
        path = parts.path
    else:  # scp-like: git@github.com:owner/repo.git
        user_host, _, path = text.partition(":")
        host = user_host.rsplit("@", 1)[-1].lower()
    path = path.strip("/").removesuffix(".git")
    return f"{host}/{path.lower() if host == 'github.com' else path}"  # GitHub ignores case


class Connections:
    def __init__(self, store: Store, settings: Settings, vault: Vault, github: GitHub) -> None:
        self.store = store
        self.settings = settings
        self.vault = vault
        self.github = github
        self.tokens = TokenCache(github)

    def _arn(self, name: str) -> str:
        s = self.settings
        return f"arn:aws:apprunner:{s.region}:{s.account_id}:connection/{name}/{uuid.uuid4().hex}"

    def get(self, arn: str) -> dict[str, Any]:
        row = self.store.get_connection(arn)
        if row is None:
            raise ResourceNotFound(f"Connection {arn} not found")
        return row

    def create(
        self, name: str, provider: str, tags: list[dict[str, str]] | None = None
    ) -> dict[str, Any]:
        """A PENDING_HANDSHAKE connection with its tags, both or neither: bad tags are
        refused before anything is stored."""
        if provider != "GITHUB":
            raise InvalidRequest(f"ProviderType {provider}: slipway supports GITHUB connections")
        tag_values = tag_dict(tags or [])
        with self.store.transaction():
            if self.store.connection_by_name(name):
                raise InvalidRequest(f"Connection with the provided name {name} already exists")
            quota = self.settings.connection_quota
            if len(self.store.list_connections()) >= quota:
                raise QuotaExceeded(
                    f"You have reached the maximum of {quota} connections (connection_quota)"
                )
            arn = self._arn(name)
            self.store.insert_connection(
                {
                    "arn": arn,
                    "name": name,
                    "provider": provider,
                    "status": "PENDING_HANDSHAKE",
                    "created_at": time.time(),
                }
            )
            if tag_values:
                self.store.put_tags(arn, tag_values)
        return self.get(arn)

    def list(self, name: str | None = None) -> list[dict[str, Any]]:
        rows = self.store.list_connections()
        return [r for r in rows if name is None or r["name"] == name]

    def users(self, arn: str) -> list[str]:
        return [s.name for s in self.store.list_services() if s.spec.source.connection_arn == arn]

    def delete(self, arn: str) -> dict[str, Any]:
        row = self.get(arn)
        users = self.users(arn)
        if users:
            raise InvalidRequest(
                f"Connection {row['name']} is used by service(s) {', '.join(users)};"
                " delete them or move them to another connection first"
            )
        self.store.delete_connection(arn)
        return {**row, "status": "DELETED"}

    def authorize(
        self, name: str, *, token: str | None = None, app: AppCredentials | None = None
    ) -> dict[str, Any]:
        """Complete the handshake: GitHub must accept the credential first; a failed
        check leaves the connection as it was."""
        row = self.store.connection_by_name(name)
        if row is None:
            raise ResourceNotFound(f"Connection {name} not found")
        if bool(token) == bool(app):
            raise InvalidRequest("authorize takes a token or a GitHub App, not both or neither")
        try:
            if token:
                account = self.github.verify_token(token)
            else:
                app = self.github.verify_app(app)
        except GitHubError as exc:
            if not exc.terminal:
                raise
            raise InvalidRequest(exc.message) from exc
        if token:
            stored: dict[str, Any] = {"token": token}
        else:
            account = f"app {app.app_id} installation {app.installation_id}"
            stored = {
                "app_id": app.app_id,
                "private_key": app.private_key,
                "installation_id": app.installation_id,
            }
        webhook_secret = secrets.token_hex(24)
        self.store.update_connection(
            row["arn"],
            status="AVAILABLE",
            account=account,
            credentials=self.vault.seal(json.dumps(stored)),
            webhook_secret=self.vault.seal(webhook_secret),
        )
        return {**self.get(row["arn"]), "webhook_secret": webhook_secret}

    def check_usable(self, arn: str) -> None:
        """A service may name only a connection that exists and finished its handshake."""
        row = self.get(arn)
        if row["status"] != "AVAILABLE":
            raise InvalidState(
                f"Connection {row['name']} is {row['status']}; complete it with"
                f" `slipway connections authorize {row['name']}`"
            )

    def token(self, arn: str | None) -> str | None:
        """The git/GitHub token for a connection, refreshing an App's installation token."""
        if not arn:
            return None
        row = self.get(arn)
        if row["status"] != "AVAILABLE" or not row["credentials"]:
            raise InvalidState(f"Connection {row['name']} is {row['status']}")
        stored = json.loads(self.vault.open(row["credentials"]))
        if "token" in stored:
            return stored["token"]
        return self.tokens.token(arn, AppCredentials(**stored))

    def provider_hosts(self) -> set[str]:
        """Where connections' tokens may go: ``github_hosts`` and the API's host."""
        api = urlsplit(self.settings.github_api_url)
        hosts = {h.lower() for h in self.settings.github_hosts}
        if api.hostname:
            hosts |= {api.hostname.lower(), api.netloc.rpartition("@")[2].lower()}
        return hosts

    def token_for_repository(self, arn: str | None, url: str) -> str | None:
        """The token a git fetch or ls-remote of ``url`` carries: the connection's, when
        ``url`` is an HTTP(S) URL its token may go to (``token_refusal``); an SSH URL
        carries none. A service whose URL leads elsewhere fails, naming why, rather
        than hand the token to another host or send it in clear."""
        if not arn or "://" not in url or urlsplit(url).scheme.lower() not in ("http", "https"):
            return None
        refusal = token_refusal(url, self.provider_hosts())
        if refusal:
            raise InvalidRequest(f"the connection's token is not sent to {url}: {refusal}")
        return self.token(arn)

    def webhook_secrets(self, urls: set[str]) -> list[str]:
        """Secrets a GitHub webhook for these repository URLs may be signed with: those of
        the connections of services on the repository; the global one only when no
        service there has a connection (a repository with its own secret is not open to
        whoever holds the global one)."""
        wanted = {normalize_url(u) for u in urls}
        found = []
        owned = False
        for service in self.store.list_services():
            source = service.spec.source
            if (
                source.code
                and source.connection_arn
                and normalize_url(source.code.repository_url) in wanted
            ):
                owned = True
                row = self.store.get_connection(source.connection_arn)
                if row and row["webhook_secret"]:
                    found.append(self.vault.open(row["webhook_secret"]))
        if self.settings.github_webhook_secret and not owned:
            found.append(self.settings.github_webhook_secret)
        return list(dict.fromkeys(found))
