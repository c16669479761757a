"""GitHub errors, and the one place PyGithub, requests and PyJWT errors become them.

Separate from ``github.py`` so the masking of tokens in foreign messages can be read
(and tested) on its own, apart from the calls::

    SlipwayError
    └── GitHubError            (terminal: retrying will not help; 403, 404, 409, 422)
        ├── GitHubAuthFailed   (401: token, JWT or private key rejected)
        └── GitHubUnavailable  (passing: refused, timed out, 5xx, rate limited)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import github
import jwt
import requests
from github import GithubException

from ..errors import SlipwayError


class GitHubError(SlipwayError):
    """GitHub refused or failed a call; ``terminal`` says whether retrying helps.

    ``deployment_id`` is set when a Deployment was created before a later step failed,
    so the caller can still finish it.
    """

    terminal = True

    def __init__(self, message: str, *, deployment_id: int | None = None) -> None:
        super().__init__(message)
        self.deployment_id = deployment_id


class GitHubAuthFailed(GitHubError):
    pass


class GitHubUnavailable(GitHubError):
    terminal = False


def _mask(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _github_message(exc: GithubException) -> str:
    data = exc.data
    if isinstance(data, dict):
        message = str(data.get("message") or "")
        details = [
            str(e.get("message") or e.get("code") or "") if isinstance(e, dict) else str(e)
            for e in data.get("errors") or []
        ]
        return "; ".join(m for m in [message, *details] if m)
    return str(data or "")


@contextmanager
def translated(action: str, subject: str, *secrets: str) -> Iterator[None]:
    """Turn PyGithub, requests and PyJWT errors into GitHubError, with secrets masked.

    ``subject`` names the credential ("token", "GitHub App 12") in auth failures.
    """
    try:
        yield
    except GithubException as exc:
        status = exc.status
        message = _mask(_github_message(exc), secrets) or "no message"
        if status == 401:
            raise GitHubAuthFailed(
                f"{subject} rejected by GitHub: 401 {message} (while trying to {action})"
            ) from exc
        if isinstance(exc, github.RateLimitExceededException) or status == 429:
            raise GitHubUnavailable(
                f"could not {action}: GitHub rate limit: {status} {message}"
            ) from exc
        if status >= 500:
            raise GitHubUnavailable(
                f"could not {action}: GitHub answered {status} {message}"
            ) from exc
        if status == 404:
            raise GitHubError(
                f"could not {action}: 404 {message} (missing, or not visible to this {subject})"
            ) from exc
        if status == 403:
            raise GitHubError(
                f"could not {action}: {subject} lacks permission: 403 {message}"
            ) from exc
        raise GitHubError(f"could not {action}: GitHub answered {status} {message}") from exc
    except requests.RequestException as exc:
        detail = _mask(str(exc), secrets)
        raise GitHubUnavailable(
            f"could not {action}: GitHub unreachable ({type(exc).__name__}: {detail})"
        ) from exc
    except jwt.PyJWTError as exc:
        raise GitHubAuthFailed(
            f"{subject}: its private key cannot sign a JWT ({type(exc).__name__})"
        ) from exc
