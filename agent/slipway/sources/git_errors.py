"""Git errors, and the one place dulwich, urllib3 and socket errors become them.

Separate from ``git.py`` so the checkout writer (``git_tree.py``) and the source share
one error tree without importing the transport::

    SlipwayError
    └── GitError                   (terminal: retrying will not help)
        ├── GitUnreachable         (passing: refused, reset, timed out, 5xx)
        ├── GitAuthFailed          (401/403, ssh permission denied)
        ├── RepositoryNotFound     (404, not a repository)
        ├── BranchNotFound
        ├── TagNotFound
        ├── CommitNotFound         (a SHA that is not on the branch or behind the tag)
        ├── SourceDirectoryNotFound
        └── GitLimitExceeded       (a fetch crossed a ``git_*`` limit; git_limits.py)

Every message names the repository by a URL without credentials, and any text taken
from a foreign error has the token masked.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import urllib3
import urllib3.exceptions
from dulwich.client import HTTPProxyUnauthorized, HTTPUnauthorized
from dulwich.errors import GitProtocolError, HangupException, NotGitRepository

from ..errors import SlipwayError
from .git_names import display_url

log = logging.getLogger(__name__)

_HTTP_STATUS = re.compile(r"unexpected http resp (\d{3})")


class GitError(SlipwayError):
    """A repository could not give us a commit; ``terminal`` says whether retrying helps."""

    terminal = True


class GitUnreachable(GitError):
    terminal = False


class GitAuthFailed(GitError):
    pass


class RepositoryNotFound(GitError):
    pass


class BranchNotFound(GitError):
    pass


class TagNotFound(GitError):
    pass


class CommitNotFound(GitError):
    pass


class SourceDirectoryNotFound(GitError):
    pass


class GitLimitExceeded(GitError):
    pass


def _masked(text: str, token: str | None) -> str:
    return text.replace(token, "***") if token else text


@contextmanager
def translated(url: str, token: str | None, *, refusal_ok: bool = False) -> Iterator[None]:
    """Turn dulwich, urllib3 and socket errors into GitError subclasses.

    With ``refusal_ok`` a server's refusal (an error it answered with, not a transport
    failure) is swallowed: the caller has another way to get what it asked for.
    """
    try:
        yield
    except GitError:
        raise
    except Exception as exc:
        if refusal_ok and _is_refusal(exc):
            log.debug("server refused: %s", _masked(str(exc), token))
            return
        error = _translate(exc, display_url(url), token)
        if error is None:
            raise
        raise error from exc


def _is_refusal(exc: Exception) -> bool:
    if isinstance(exc, KeyError):  # a local repository that lacks the object
        return True
    if not isinstance(exc, GitProtocolError) or isinstance(exc, HangupException):
        return False
    if isinstance(exc.__cause__, urllib3.exceptions.HTTPError | OSError):
        return False
    status = _HTTP_STATUS.search(str(exc))
    return status is None or status.group(1) not in ("401", "403", "404")


def _translate(exc: Exception, where: str, token: str | None) -> GitError | None:
    """The GitError for a foreign exception, or None for one that is not ours to translate."""
    raw = str(exc).strip()  # classified as is; only masked text goes into a message
    if isinstance(exc, HTTPProxyUnauthorized):
        return GitAuthFailed(f"the HTTP proxy refused to carry the request to {where}")
    if isinstance(exc, HTTPUnauthorized):
        hint = "the connection's token was refused" if token else "it needs a connection"
        return GitAuthFailed(f"{where} requires authentication: {hint}")
    if isinstance(exc, NotGitRepository):
        return RepositoryNotFound(
            f"repository {where} not found (or private and the connection cannot read it)"
        )
    if isinstance(exc, HangupException):
        return _from_ssh_stderr(raw, where, token)
    if isinstance(exc, GitProtocolError):
        cause = exc.__cause__
        if isinstance(cause, urllib3.exceptions.HTTPError | OSError):
            return _unreachable(cause, where, token)
        status = _HTTP_STATUS.search(raw)
        code = int(status.group(1)) if status else 0
        if code in (401, 403):
            return GitAuthFailed(f"{where} refused access (HTTP {code})")
        if code == 404:
            return RepositoryNotFound(f"repository {where} not found (HTTP 404)")
        if code == 429 or code >= 500:
            return GitUnreachable(f"{where} answered HTTP {code}; will retry")
        if status:
            return GitError(f"{where} answered HTTP {code}")
        return GitError(f"{where}: {_redact_urls(_masked(raw, token))}")
    if isinstance(exc, FileNotFoundError):
        return GitError(f"cannot reach {where}: {exc.strerror}: {exc.filename}")
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError):
        return _unreachable(exc, where, token)
    return None


def _unreachable(exc: BaseException, where: str, token: str | None) -> GitUnreachable:
    reason: Any = getattr(exc, "reason", None) or exc
    if isinstance(reason, urllib3.exceptions.NewConnectionError):
        text = "connection failed"
    elif isinstance(reason, urllib3.exceptions.TimeoutError | TimeoutError):
        text = "timed out"
    elif isinstance(reason, urllib3.exceptions.SSLError):
        text = f"TLS failed ({_masked(str(reason), token)})"
        return GitUnreachable(f"cannot reach {where}: {text}")
    else:
        text = type(reason).__name__
    inner = getattr(reason, "__context__", None) or getattr(reason, "__cause__", None)
    if isinstance(inner, OSError) and inner.strerror:
        text += f" ({inner.strerror})"
    elif isinstance(reason, OSError) and reason.strerror:
        text += f" ({reason.strerror})"
    return GitUnreachable(_masked(f"cannot reach {where}: {text}", token))


def _from_ssh_stderr(stderr: str, where: str, token: str | None) -> GitError:
    """An SSH server (or the ssh client) hung up; its stderr says why."""
    lowered = stderr.lower()
    last = _redact_urls(_masked(stderr.splitlines()[-1], token)) if stderr else "hung up"
    if "permission denied" in lowered or "host key verification failed" in lowered:
        return GitAuthFailed(f"{where} refused access: {last}")
    if "not found" in lowered or "does not appear to be a git repository" in lowered:
        return RepositoryNotFound(f"repository {where} not found: {last}")
    return GitUnreachable(f"cannot reach {where}: {last}")


def _redact_urls(text: str) -> str:
    """Credentials in any URL a foreign message quotes become ***."""
    return re.sub(r"(\w+://)[^/@\s]*@", r"\1***@", text)
