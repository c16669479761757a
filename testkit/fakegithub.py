"""A fake GitHub REST API on 127.0.0.1 for tests, shaped closely enough for PyGithub.

GitHub itself is not reachable from tests, so ``FakeGitHub`` answers the few calls
slipway makes, at the HTTP boundary, with the status codes, bodies and ``url`` fields
the real API sends (every ``url`` points back at the fake, because PyGithub follows
them). Tokens are checked like GitHub does: personal tokens from ``add_user``,
installation tokens it issued itself (they expire), and RS256 JWTs signed by the key
of an app from ``add_app``. Every request is recorded, in order, for assertions.

    with FakeGitHub() as fake:
        fake.add_user("ghp_secret", "octocat")
        fake.add_repo("octocat/app")
        GitHub(fake.url, seconds_between_writes=0).verify_token("ghp_secret")
        assert fake.requests[-1].path == "/user"

Knobs: ``fail_next(status)`` answers the next request with an error, ``down()`` closes
the listening socket (connection refused from then on), ``revoke(token)`` makes a token
answer 401 like a deleted one.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

DOCS = "https://docs.github.com/rest"
_HEX_SHA = re.compile(r"^[0-9a-f]{40}$")
_DEPLOYMENT_STATES = {"error", "failure", "inactive", "in_progress", "queued", "pending", "success"}
_COMMIT_STATES = {"error", "failure", "pending", "success"}
_REASONS = {
    400: "Bad Request",
    401: "Bad credentials",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    422: "Validation Failed",
    500: "Internal Server Error",
    502: "Server Error",
    503: "Service Unavailable",
}


def generate_private_key() -> str:
    """A fresh 2048-bit RSA key in PEM (PKCS#1, like the keys GitHub hands out)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode("ascii")


def _public_key(private_key_pem: str) -> Any:
    key = serialization.load_pem_private_key(private_key_pem.encode("ascii"), password=None)
    return key.public_key()


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(int(epoch), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Request:
    """One request as the fake saw it; ``auth`` is "token", "jwt" or None (anonymous)."""

    method: str
    path: str
    body: Any
    auth: str | None
    credential: str | None
    status: int


@dataclass
class _User:
    login: str
    id: int
    can_write: bool = True


@dataclass
class _Repo:
    owner: str
    name: str
    id: int
    private: bool
    readers: set[str] | None  # tokens that see a private repo; None: any valid token

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


@dataclass
class _App:
    id: int
    slug: str
    public_key: Any
    installations: dict[int, str] = field(default_factory=dict)  # id -> account login


@dataclass
class _InstallationToken:
    installation_id: int
    app_id: int
    expires_at: float


class _Error(Exception):
    def __init__(self, status: int, message: str | None = None, **extra: Any) -> None:
        super().__init__(status)
        self.status = status
        self.body = {"message": message or _REASONS.get(status, "Error"), **extra}
        self.body.setdefault("documentation_url", DOCS)


class FakeGitHub:
    """GitHub's REST API for users, repositories, deployments, statuses and apps."""

    def __init__(
        self,
        *,
        token_lifetime: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.token_lifetime = token_lifetime
        self.clock = clock
        self.requests: list[Request] = []
        self.deployments: dict[int, dict[str, Any]] = {}
        self.deployment_statuses: dict[int, list[dict[str, Any]]] = {}
        self.commit_statuses: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._users: dict[str, _User] = {}
        self._repos: dict[str, _Repo] = {}
        self._apps: dict[int, _App] = {}
        self._installation_tokens: dict[str, _InstallationToken] = {}
        self._failures: list[tuple[int, str | None] | None] = []
        self._ids = itertools.count(1000)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # shutdown() waits up to one interval
            name="fake-github",
            daemon=True,
        )
        self._thread.start()
        self._up = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- setup -----------------------------------------------------------------

    def add_user(self, token: str, login: str, *, can_write: bool = True) -> None:
        """A personal access token that authenticates as ``login``."""
        with self._lock:
            self._users[token] = _User(login, next(self._ids), can_write)

    def add_repo(
        self, full_name: str, *, private: bool = False, readers: set[str] | None = None
    ) -> None:
        """A repository; a private one is visible to ``readers`` (tokens), or to all if None."""
        owner, name = full_name.split("/")
        with self._lock:
            self._repos[full_name.lower()] = _Repo(owner, name, next(self._ids), private, readers)

    def add_app(
        self,
        app_id: int,
        private_key: str,
        *,
        slug: str | None = None,
        installations: Mapping[int, str] | None = None,
    ) -> None:
        """A GitHub App whose JWTs are checked against ``private_key``'s public half."""
        with self._lock:
            self._apps[app_id] = _App(
                app_id, slug or f"app-{app_id}", _public_key(private_key), dict(installations or {})
            )

    # -- knobs -----------------------------------------------------------------

    def fail_next(
        self, status: int, message: str | None = None, *, times: int = 1, after: int = 0
    ) -> None:
        """Let ``after`` requests through, then answer ``times`` requests with ``status``."""
        with self._lock:
            self._failures.extend([None] * after + [(status, message)] * times)

    def revoke(self, token: str) -> None:
        """Forget a personal or installation token: it answers 401 from now on."""
        with self._lock:
            self._users.pop(token, None)
            self._installation_tokens.pop(token, None)

    def down(self) -> None:
        """Stop listening: further connections are refused."""
        if self._up:
            self._up = False
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)

    close = down

    def __enter__(self) -> FakeGitHub:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.down()

    # -- inspection ------------------------------------------------------------

    def calls(self) -> list[tuple[str, str]]:
        """(method, path) of every request so far, in order."""
        return [(r.method, r.path) for r in self.requests]

    def installation_tokens(self) -> list[str]:
        with self._lock:
            return list(self._installation_tokens)

    # -- dispatch --------------------------------------------------------------

    def _handle(
        self, method: str, path: str, headers: Mapping[str, str], raw: bytes
    ) -> tuple[int, Any]:
        auth, credential = _credential(headers.get("Authorization", ""))
        body: Any = None
        status, payload = 500, {"message": "fake error"}
        try:
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError as exc:
                    raise _Error(400, "Problems parsing JSON") from exc
            with self._lock:
                failure = self._failures.pop(0) if self._failures else None
                if failure is not None:
                    raise _Error(*failure)
                status, payload = self._route(method, path, auth, credential, body)
        except _Error as exc:
            status, payload = exc.status, exc.body
        finally:
            with self._lock:
                self.requests.append(Request(method, path, body, auth, credential, status))
        return status, payload

    def _route(
        self, method: str, path: str, auth: str | None, credential: str | None, body: Any
    ) -> tuple[int, Any]:
        parts = [p for p in path.split("/") if p]
        if parts[:1] == ["app"]:
            app = self._app_for(auth, credential)
            if method == "GET" and parts == ["app"]:
                return 200, self._app_json(app)
            if method == "GET" and parts == ["app", "installations"]:
                return 200, [self._installation_json(app, i) for i in sorted(app.installations)]
            if len(parts) >= 3 and parts[1] == "installations" and parts[2].isdigit():
                installation_id = int(parts[2])
                if installation_id not in app.installations:
                    raise _Error(404)
                if method == "GET" and len(parts) == 3:
                    return 200, self._installation_json(app, installation_id)
                if method == "POST" and parts[3:] == ["access_tokens"]:
                    return 201, self._issue_token(app, installation_id)
            raise _Error(404)
        user = self._token_owner(auth, credential)
        if method == "GET" and parts == ["user"]:
            if not isinstance(user, _User):
                raise _Error(403, "Resource not accessible by integration")
            return 200, self._user_json(user.login, user.id)
        if len(parts) >= 3 and parts[0] == "repos":
            repo = self._visible_repo(f"{parts[1]}/{parts[2]}", credential, user)
            rest = parts[3:]
            if method == "GET" and not rest:
                return 200, self._repo_json(repo)
            if method == "POST":
                if isinstance(user, _User) and not user.can_write:
                    raise _Error(403, "Resource not accessible by personal access token")
                if rest == ["deployments"]:
                    return 201, self._create_deployment(repo, body, user)
                if len(rest) == 3 and rest[0] == "deployments" and rest[2] == "statuses":
                    return 201, self._create_deployment_status(repo, rest[1], body, user)
                if len(rest) == 2 and rest[0] == "statuses":
                    return 201, self._create_commit_status(repo, rest[1], body, user)
            if method == "GET" and len(rest) == 2 and rest[0] == "deployments":
                deployment = self.deployments.get(int(rest[1])) if rest[1].isdigit() else None
                if deployment is None or deployment["repository_url"] != self._repo_url(repo):
                    raise _Error(404)
                return 200, deployment
        raise _Error(404)

    # -- authentication ----------------------------------------------------------

    def _token_owner(self, auth: str | None, credential: str | None) -> _User | _InstallationToken:
        if auth != "token" or credential is None:
            raise _Error(401, "Requires authentication" if auth is None else "Bad credentials")
        if credential in self._users:
            return self._users[credential]
        issued = self._installation_tokens.get(credential)
        if issued is not None and issued.expires_at > self.clock():
            return issued
        raise _Error(401, "Bad credentials")

    def _app_for(self, auth: str | None, credential: str | None) -> _App:
        if auth != "jwt" or credential is None:
            raise _Error(401, "A JSON web token could not be decoded")
        try:
            claims = jwt.decode(credential, options={"verify_signature": False})
            app = self._apps.get(int(claims.get("iss", "")))
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise _Error(401, "A JSON web token could not be decoded") from exc
        if app is None:
            raise _Error(401, "Integration not found")
        try:
            claims = jwt.decode(
                credential,
                app.public_key,
                algorithms=["RS256"],
                options={"require": ["exp", "iat", "iss"]},
                leeway=30,
            )
        except jwt.ExpiredSignatureError as exc:
            raise _Error(
                401, "'Expiration time' claim ('exp') must be a numeric value in the future"
            ) from exc
        except jwt.PyJWTError as exc:
            raise _Error(401, "A JSON web token could not be decoded") from exc
        if int(claims["exp"]) - int(claims["iat"]) > 660:
            raise _Error(401, "'Expiration time' claim ('exp') is too far in the future")
        return app

    def _issue_token(self, app: _App, installation_id: int) -> dict[str, Any]:
        token = "ghs_" + secrets.token_urlsafe(27)
        expires_at = self.clock() + self.token_lifetime
        self._installation_tokens[token] = _InstallationToken(installation_id, app.id, expires_at)
        return {
            "token": token,
            "expires_at": _iso(expires_at),
            "permissions": {"contents": "read", "deployments": "write", "statuses": "write"},
            "repository_selection": "all",
        }

    def _visible_repo(
        self, full_name: str, credential: str | None, user: _User | _InstallationToken
    ) -> _Repo:
        repo = self._repos.get(full_name.lower())
        if repo is None:
            raise _Error(404)
        if not repo.private or repo.readers is None or credential in repo.readers:
            return repo
        if isinstance(user, _InstallationToken):
            account = self._apps[user.app_id].installations.get(user.installation_id)
            if account is not None and account.lower() == repo.owner.lower():
                return repo
        raise _Error(404)

    # -- writes ------------------------------------------------------------------

    def _creator(self, user: _User | _InstallationToken) -> dict[str, Any]:
        if isinstance(user, _User):
            return self._user_json(user.login, user.id)
        app = self._apps[user.app_id]
        return {**self._user_json(f"{app.slug}[bot]", app.id), "type": "Bot"}

    def _create_deployment(
        self, repo: _Repo, body: Any, user: _User | _InstallationToken
    ) -> dict[str, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("ref"), str):
            raise _Error(422, 'Invalid request.\n\n"ref" wasn\'t supplied.')
        ref = body["ref"]
        sha = ref if _HEX_SHA.match(ref) else hashlib.sha1(ref.encode()).hexdigest()
        deployment_id = next(self._ids)
        environment = body.get("environment", "production")
        url = f"{self._repo_url(repo)}/deployments/{deployment_id}"
        now = _iso(self.clock())
        deployment = {
            "url": url,
            "id": deployment_id,
            "node_id": _node_id("DE", deployment_id),
            "sha": sha,
            "ref": ref,
            "task": body.get("task", "deploy"),
            "payload": body.get("payload", {}),
            "original_environment": environment,
            "environment": environment,
            "description": _checked_description(body.get("description")),
            "creator": self._creator(user),
            "created_at": now,
            "updated_at": now,
            "statuses_url": f"{url}/statuses",
            "repository_url": self._repo_url(repo),
            "transient_environment": bool(body.get("transient_environment", False)),
            "production_environment": bool(
                body.get("production_environment", environment == "production")
            ),
        }
        self.deployments[deployment_id] = deployment
        self.deployment_statuses[deployment_id] = []
        return deployment

    def _create_deployment_status(
        self, repo: _Repo, deployment_id: str, body: Any, user: _User | _InstallationToken
    ) -> dict[str, Any]:
        deployment = self.deployments.get(int(deployment_id)) if deployment_id.isdigit() else None
        if deployment is None or deployment["repository_url"] != self._repo_url(repo):
            raise _Error(404)
        state = body.get("state") if isinstance(body, dict) else None
        if state not in _DEPLOYMENT_STATES:
            raise _Error(422, f"Validation Failed: state {state!r} is not included in the list")
        status_id = next(self._ids)
        now = _iso(self.clock())
        status = {
            "url": f"{deployment['url']}/statuses/{status_id}",
            "id": status_id,
            "node_id": _node_id("DES", status_id),
            "state": state,
            "creator": self._creator(user),
            "description": _checked_description(body.get("description")),
            "environment": body.get("environment", deployment["environment"]),
            "target_url": body.get("target_url", ""),
            "log_url": body.get("log_url", body.get("target_url", "")),
            "environment_url": body.get("environment_url", ""),
            "created_at": now,
            "updated_at": now,
            "deployment_url": deployment["url"],
            "repository_url": deployment["repository_url"],
        }
        self.deployment_statuses[deployment["id"]].append(status)
        return status

    def _create_commit_status(
        self, repo: _Repo, sha: str, body: Any, user: _User | _InstallationToken
    ) -> dict[str, Any]:
        if not _HEX_SHA.match(sha):
            raise _Error(422, f"No commit found for SHA: {sha}")
        state = body.get("state") if isinstance(body, dict) else None
        if state not in _COMMIT_STATES:
            raise _Error(422, f"Validation Failed: state {state!r} is not included in the list")
        status_id = next(self._ids)
        now = _iso(self.clock())
        status = {
            "url": f"{self._repo_url(repo)}/statuses/{sha}",
            "avatar_url": f"https://avatars.githubusercontent.com/u/{status_id}",
            "id": status_id,
            "node_id": _node_id("SC", status_id),
            "state": state,
            "description": _checked_description(body.get("description")),
            "target_url": body.get("target_url"),
            "context": body.get("context", "default"),
            "created_at": now,
            "updated_at": now,
            "creator": self._creator(user),
        }
        self.commit_statuses.setdefault((repo.full_name, sha), []).append(status)
        return status

    # -- shapes ------------------------------------------------------------------

    def _user_json(self, login: str, user_id: int) -> dict[str, Any]:
        return {
            "login": login,
            "id": user_id,
            "node_id": _node_id("U", user_id),
            "avatar_url": f"https://avatars.githubusercontent.com/u/{user_id}",
            "gravatar_id": "",
            "url": f"{self.url}/users/{login}",
            "html_url": f"https://github.com/{login}",
            "type": "User",
            "site_admin": False,
        }

    def _repo_url(self, repo: _Repo) -> str:
        return f"{self.url}/repos/{repo.full_name}"

    def _repo_json(self, repo: _Repo) -> dict[str, Any]:
        url = self._repo_url(repo)
        return {
            "id": repo.id,
            "node_id": _node_id("R", repo.id),
            "name": repo.name,
            "full_name": repo.full_name,
            "owner": self._user_json(repo.owner, repo.id + 1),
            "private": repo.private,
            "visibility": "private" if repo.private else "public",
            "html_url": f"https://github.com/{repo.full_name}",
            "clone_url": f"https://github.com/{repo.full_name}.git",
            "url": url,
            "deployments_url": f"{url}/deployments",
            "statuses_url": f"{url}/statuses/{{sha}}",
            "default_branch": "main",
            "archived": False,
            "disabled": False,
            "fork": False,
            "permissions": {"admin": False, "push": True, "pull": True},
        }

    def _app_json(self, app: _App) -> dict[str, Any]:
        return {
            "id": app.id,
            "slug": app.slug,
            "node_id": _node_id("A", app.id),
            "client_id": f"Iv1.{app.id:016x}",
            "owner": self._user_json("slipway-owner", app.id + 1),
            "name": app.slug,
            "description": "",
            "external_url": "https://slipway.invalid",
            "html_url": f"https://github.com/apps/{app.slug}",
            "created_at": _iso(0),
            "updated_at": _iso(0),
            "permissions": {"contents": "read", "deployments": "write", "statuses": "write"},
            "events": ["push"],
            "installations_count": len(app.installations),
        }

    def _installation_json(self, app: _App, installation_id: int) -> dict[str, Any]:
        account = app.installations[installation_id]
        return {
            "id": installation_id,
            "account": self._user_json(account, installation_id + 1),
            "access_tokens_url": f"{self.url}/app/installations/{installation_id}/access_tokens",
            "repositories_url": f"{self.url}/installation/repositories",
            "html_url": f"https://github.com/settings/installations/{installation_id}",
            "app_id": app.id,
            "app_slug": app.slug,
            "target_id": installation_id + 1,
            "target_type": "User",
            "permissions": {"contents": "read", "deployments": "write", "statuses": "write"},
            "events": ["push"],
            "created_at": _iso(0),
            "updated_at": _iso(0),
            "single_file_name": None,
            "repository_selection": "all",
            "suspended_at": None,
        }


def _node_id(kind: str, number: int) -> str:
    return base64.b64encode(f"0:{kind}{number}".encode()).decode("ascii")


def _checked_description(value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or len(value) > 140):
        raise _Error(422, "Validation Failed: description is too long (maximum is 140 characters)")
    return value


def _credential(header: str) -> tuple[str | None, str | None]:
    """How a request authenticates: ("token", t) for tokens, ("jwt", j) for app JWTs."""
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if not value or scheme.lower() not in ("token", "bearer"):
        return None, None
    if value.count(".") == 2:
        try:
            jwt.get_unverified_header(value)
        except jwt.PyJWTError:
            pass
        else:
            return "jwt", value
    return "token", value


def _handler_for(fake: FakeGitHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "GitHub.com"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            path = urlsplit(self.path).path
            status, payload = fake._handle(self.command, path, self.headers, raw)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-GitHub-Media-Type", "github.v3; format=json")
            self.send_header("X-RateLimit-Limit", "5000")
            self.send_header("X-RateLimit-Remaining", "4999")
            self.send_header("X-RateLimit-Reset", str(int(time.time()) + 3600))
            if status == 201 and isinstance(payload, dict) and "url" in payload:
                self.send_header("Location", payload["url"])
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: tests read fake.requests instead

    return Handler
