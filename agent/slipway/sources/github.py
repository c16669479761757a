"""GitHub through PyGithub: connection checks, App installation tokens, deployment feedback.

A Connection holds either a token or a GitHub App (id + private key). ``verify_token``
and ``verify_app`` move a connection to AVAILABLE; ``installation_token`` (cached by
``TokenCache``) turns an App into the token git and the API calls use. While a revision
rolls out, ``deployment_started``/``deployment_finished`` tell GitHub through a
Deployment (environment = service name) and a commit status ``slipway/<service>``.
Feedback is a courtesy: callers log a ``GitHubError`` from those two, never fail on it.

The credentials and the token cache are in ``github_app.py``; the errors, and the
translation of PyGithub's, requests' and PyJWT's (``translated``), in
``github_errors.py``. Tokens travel only in Authorization headers; every message
taken from a foreign error has them masked. PyGithub's own DEBUG log (logger
``github.Requester``) masks the Authorization header but prints response bodies, and
the body of ``POST /app/installations/{id}/access_tokens`` *is* the installation
token, so this module pins that logger at INFO (turning the root logger to DEBUG does
not reach it) and masks ``"token"`` fields in its records for whoever lowers it on
purpose.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC
from typing import Any
from urllib.parse import urlsplit

import github
from github import Auth, GithubIntegration

from ..errors import InvalidRequest
from .github_app import AppCredentials
from .github_errors import GitHubAuthFailed, GitHubError, translated

log = logging.getLogger(__name__)


class _RedactTokens(logging.Filter):
    """Mask ``"token": "..."`` in PyGithub's records, for whoever lowers its level anyway."""

    _TOKEN_FIELD = re.compile(r'("token"\s*:\s*")[^"]*(")')

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self._TOKEN_FIELD.sub(r"\1***\2", message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


# PyGithub logs response bodies at DEBUG, installation tokens included (see above).
_PYGITHUB_LOG = logging.getLogger("github.Requester")
_PYGITHUB_LOG.setLevel(logging.INFO)
_PYGITHUB_LOG.addFilter(_RedactTokens())

DEFAULT_API_URL = "https://api.github.com"
_DESCRIPTION_MAX = 140  # GitHub answers 422 to longer status descriptions
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_SCP_LIKE = re.compile(r"^(?:[A-Za-z0-9._-]+@)?(?P<host>[A-Za-z0-9._-]+):(?P<path>[^/].*)$")
_INSTALLATIONS_SHOWN = 10


def github_repo_name(repository_url: str, hosts: Iterable[str] = ("github.com",)) -> str | None:
    """``owner/repo`` of a repository URL on one of ``hosts``, else None.

    Accepts ``https://host/owner/repo(.git)``, ``ssh://git@host[:port]/owner/repo`` and
    ``git@host:owner/repo.git``. A host in ``hosts`` may carry a port (``127.0.0.1:9418``).
    """
    wanted = {h.lower() for h in hosts}
    url = repository_url.strip()
    if "://" in url:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return None
        if parts.scheme.lower() not in ("https", "http", "ssh", "git") or not parts.hostname:
            return None
        host = parts.hostname.lower()
        if host not in wanted and f"{host}:{port}" not in wanted:
            return None
        path = parts.path
    else:
        scp = _SCP_LIKE.match(url)
        if scp is None or scp["host"].lower() not in wanted:
            return None
        path = scp["path"]
    segments = [s for s in path.split("/") if s]
    if len(segments) != 2:
        return None
    owner, repo = segments[0], segments[1].removesuffix(".git")
    if not all(_NAME.match(s) and s not in (".", "..") for s in (owner, repo)):
        return None
    return f"{owner}/{repo}"


def token_refusal(url: str, hosts: set[str] | frozenset[str]) -> str | None:
    """Why a connection's token must not go with a request to ``url``, or None when it
    may: only to the provider's ``hosts`` (a name, or ``name:port``), and only over
    HTTPS; plain HTTP only on loopback, where it never leaves this host."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return f"{url!r} is not a URL"
    host = (parts.hostname or "").lower()
    if host not in hosts and f"{host}:{port}" not in hosts:
        return f"{host or url!r} is not one of the provider's hosts ({', '.join(sorted(hosts))})"
    if parts.scheme.lower() == "https":
        return None
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if parts.scheme.lower() == "http" and loopback:
        return None
    return f"{parts.scheme}:// is not HTTPS"


class GitHub:
    """One GitHub (api.github.com or an Enterprise server's ``/api/v3``) through PyGithub.

    Each call builds its own PyGithub client and closes it, so no token outlives the call.
    PyGithub's pacing is kept (one second between writes, GitHub's advice against
    secondary rate limits); a deployment's three writes take about two seconds, so
    callers run feedback off the deployment's critical path. Tests pass 0.
    """

    def __init__(
        self,
        api_url: str = DEFAULT_API_URL,
        *,
        timeout: float = 10.0,
        hosts: Iterable[str] = ("github.com",),
        seconds_between_requests: float = 0.25,
        seconds_between_writes: float = 1.0,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        api_host = urlsplit(self.api_url).netloc.rpartition("@")[2].lower()
        refusal = token_refusal(self.api_url, {api_host})
        if refusal:  # every call carries a token
            raise InvalidRequest(f"github_api_url {api_url!r}: {refusal}")
        self.timeout = timeout
        self.hosts = tuple(hosts)
        self.seconds_between_requests = seconds_between_requests
        self.seconds_between_writes = seconds_between_writes

    # -- connections -----------------------------------------------------------

    def verify_token(self, token: str) -> str:
        """The login the token authenticates as; raises GitHubAuthFailed if GitHub refuses it."""
        _require_token(token)
        with self._client(token) as gh, translated("verify the token", "token", token):
            login: str = gh.get_user().login
        log.info("GitHub token verified for %s", login)
        return login

    def verify_app(self, app: AppCredentials) -> AppCredentials:
        """Check the app's id and key sign a JWT GitHub accepts, and fill in its installation.

        With no installation id, the app's only installation is taken; none or several
        is an error that names them, since slipway cannot guess the account.
        """
        subject = f"GitHub App {app.app_id}"
        with self._integration(app) as gi:
            with translated(f"read {subject}", subject, app.private_key):
                slug = gi.get_app().slug
                if app.installation_id is not None:
                    gi.get_app_installation(app.installation_id)
                    log.info(
                        "%s (%s) verified, installation %s", subject, slug, app.installation_id
                    )
                    return app
            installation_id = self._single_installation(gi, app)
        log.info("%s (%s) verified, installation %s", subject, slug, installation_id)
        return replace(app, installation_id=installation_id)

    def installation_token(self, app: AppCredentials) -> tuple[str, float]:
        """A fresh installation token and its expiry (epoch seconds); GitHub gives an hour."""
        subject = f"GitHub App {app.app_id}"
        with self._integration(app) as gi:
            installation_id = app.installation_id
            if installation_id is None:
                installation_id = self._single_installation(gi, app)
            with translated(
                f"get a token for installation {installation_id} of {subject}",
                subject,
                app.private_key,
            ):
                granted = gi.get_access_token(installation_id)
                token, expires = granted.token, granted.expires_at
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=UTC)
        log.debug("installation token for %s expires at %s", subject, expires.isoformat())
        return token, expires.timestamp()

    def repo_accessible(self, token: str, repository_url: str) -> bool:
        """Whether the token can see the repository: False for 404, raises for a bad token."""
        _require_token(token)
        name = self._repo_name(repository_url)
        with self._client(token) as gh:
            try:
                with translated(f"read {name}", "token", token):
                    gh.get_repo(name).complete()
            except GitHubError as exc:
                if isinstance(exc.__cause__, github.UnknownObjectException):
                    return False
                raise
        return True

    # -- deployment feedback -----------------------------------------------------

    def deployment_started(
        self,
        token: str,
        repository_url: str,
        sha: str,
        service_name: str,
        description: str,
        transient: bool = False,
    ) -> int:
        """Create a Deployment of ``sha`` to environment ``service_name``, mark it in_progress
        and set commit status ``slipway/<service>`` pending; returns the deployment id.
        ``transient``: the environment goes away (a pull request's preview).

        ``auto_merge`` is off (slipway deploys the commit it was given, never a merge) and
        ``required_contexts`` is empty (slipway's own pending status must not block it).
        """
        _require_token(token)
        name = self._repo_name(repository_url)
        text = _short(description)
        with self._client(token) as gh:
            repo = gh.get_repo(name)
            with translated(f"create a deployment on {name}", "token", token):
                deployment = repo.create_deployment(
                    ref=sha,
                    environment=service_name,
                    auto_merge=False,
                    required_contexts=[],
                    description=text,
                    **({"transient_environment": True} if transient else {}),
                )
            deployment_id: int = deployment.id
            error = _attempt_all(
                token,
                (
                    f"update deployment {deployment_id} on {name}",
                    lambda: deployment.create_status("in_progress", description=text),
                ),
                (
                    f"set the status of {sha[:12]} on {name}",
                    lambda: repo.get_commit(sha).create_status(
                        "pending", description=text, context=_context(service_name)
                    ),
                ),
            )
        if error is not None:
            error.deployment_id = deployment_id
            raise error
        log.info("GitHub deployment %s of %s to %s started", deployment_id, name, service_name)
        return deployment_id

    def deployment_finished(
        self,
        token: str,
        repository_url: str,
        sha: str,
        deployment_id: int | None,
        service_name: str,
        ok: bool,
        environment_url: str | None,
        description: str,
    ) -> None:
        """Mark the Deployment (if any) and the commit status success or failure.

        The commit status is still set when GitHub refuses the deployment status; the
        first failure is raised after.
        """
        _require_token(token)
        name = self._repo_name(repository_url)
        text = _short(description)
        state = "success" if ok else "failure"
        extra: dict[str, Any] = {}
        if ok and environment_url:
            extra["environment_url"] = environment_url
        commit_extra: dict[str, Any] = {}
        if environment_url:
            commit_extra["target_url"] = environment_url
        with self._client(token) as gh:
            repo = gh.get_repo(name)
            steps: list[tuple[str, Callable[[], object]]] = []
            if deployment_id is not None:
                known_id = deployment_id
                steps.append(
                    (
                        f"update deployment {known_id} on {name}",
                        lambda: repo.get_deployment(known_id).create_status(
                            state, description=text, **extra
                        ),
                    )
                )
            steps.append(
                (
                    f"set the status of {sha[:12]} on {name}",
                    lambda: repo.get_commit(sha).create_status(
                        state, description=text, context=_context(service_name), **commit_extra
                    ),
                )
            )
            error = _attempt_all(token, *steps)
        if error is not None:
            raise error
        log.info("GitHub deployment %s of %s to %s: %s", deployment_id, name, service_name, state)

    # -- plumbing ----------------------------------------------------------------

    def _repo_name(self, repository_url: str) -> str:
        name = github_repo_name(repository_url, self.hosts)
        if name is None:
            raise GitHubError(
                f"{_without_userinfo(repository_url)!r} is not a repository on"
                f" {', '.join(self.hosts)};"
                " GitHub connections work only with GitHub repositories"
            )
        return name

    def _pygithub_options(self) -> dict[str, Any]:
        return {
            "base_url": self.api_url,
            # PyGithub asserts an int timeout; round up so 0.5 does not become "none".
            "timeout": max(1, math.ceil(self.timeout)),
            "retry": None,  # no hidden retries: the worker decides, with backoff
            "seconds_between_requests": self.seconds_between_requests or None,
            "seconds_between_writes": self.seconds_between_writes or None,
            # Objects built from a URL (repo, commit, deployment) do not GET themselves.
            "lazy": True,
        }

    def _client(self, token: str) -> github.Github:
        return github.Github(auth=Auth.Token(token), **self._pygithub_options())

    def _integration(self, app: AppCredentials) -> GithubIntegration:
        if not isinstance(app.app_id, int) or isinstance(app.app_id, bool) or app.app_id <= 0:
            raise GitHubError(f"GitHub App id {app.app_id!r} is not a positive number")
        if "PRIVATE KEY-----" not in (app.private_key or ""):
            raise GitHubAuthFailed(
                f"the private key of GitHub App {app.app_id} is not a PEM private key"
            )
        return GithubIntegration(
            auth=Auth.AppAuth(app.app_id, app.private_key), **self._pygithub_options()
        )

    def _single_installation(self, gi: GithubIntegration, app: AppCredentials) -> int:
        subject = f"GitHub App {app.app_id}"
        with translated(f"list the installations of {subject}", subject, app.private_key):
            found = [(i.id, i.account.login if i.account else "?") for i in gi.get_installations()]
        if len(found) == 1:
            return found[0][0]
        if not found:
            raise GitHubError(
                f"{subject} is not installed on any account;"
                " install it where the repositories are, then retry"
            )
        shown = ", ".join(f"{iid} ({login})" for iid, login in found[:_INSTALLATIONS_SHOWN])
        more = (
            f" and {len(found) - _INSTALLATIONS_SHOWN} more"
            if len(found) > _INSTALLATIONS_SHOWN
            else ""
        )
        raise GitHubError(
            f"{subject} has {len(found)} installations: {shown}{more}; give the installation id"
        )


def _without_userinfo(url: str) -> str:
    """A URL fit for a message: any ``user:password@`` dropped."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, path = rest.partition("/")
    return f"{scheme}://{netloc.rpartition('@')[2]}{slash}{path}"


def _context(service_name: str) -> str:
    return f"slipway/{service_name}"


def _short(text: str) -> str:
    return text if len(text) <= _DESCRIPTION_MAX else text[: _DESCRIPTION_MAX - 1] + "…"


def _require_token(token: str) -> None:
    if not token or not token.strip():
        raise GitHubAuthFailed("no GitHub token given")


def _attempt_all(token: str, *steps: tuple[str, Callable[[], object]]) -> GitHubError | None:
    """Run feedback steps in order; the first error, after trying the rest.

    A terminal error (one status refused) leaves the other steps worth trying; a
    passing one (GitHub down) would only repeat, so it stops there.
    """
    first: GitHubError | None = None
    for action, step in steps:
        try:
            with translated(action, "token", token):
                step()
        except GitHubError as exc:
            first = first or exc
            if not exc.terminal:
                break
    return first
