"""The names a caller gives a git source, checked before any network call.

Repository URLs (``parse_repository_url``, also used when a service is created, long
before any fetch), branch and tag names, and the credential-free form of a URL that
every message uses. Pure string checks: no dulwich here, so the API's request checks
can import them without the transport.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

from ..errors import InvalidRequest
from ..outbound import link_local_reason

_SCP_LIKE = re.compile(r"^(?:(?P<user>[A-Za-z0-9._-]+)@)?(?P<host>[A-Za-z0-9._-]+):(?P<path>.+)$")
_SCHEMES = ("https", "http", "ssh", "file")


def parse_repository_url(url: str) -> str:
    """Check a RepositoryUrl's form up front, so a bad one is refused before it is stored.

    Accepts ``https://``, ``http://``, ``ssh://``, ``file:///abs/path`` and scp-like
    ``user@host:path``. Credentials in the URL are refused: they would be stored and
    shown wherever the service is described; a connection carries them instead.
    """

    def bad(why: str) -> InvalidRequest:
        return InvalidRequest(f"RepositoryUrl {display_url(url)!r} is not valid: {why}")

    if not url or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise bad("it is empty or contains whitespace or control characters")
    if "://" not in url:
        scp = _SCP_LIKE.match(url)
        if not scp or scp["host"].startswith("-") or url.startswith("-"):
            raise bad("use https://host/path, ssh://git@host/path, git@host:path or file:///path")
        why = link_local_reason(scp["host"])
        if why:
            raise bad(why)
        return url
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise bad("it cannot be parsed as a URL") from exc
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise bad(f"scheme {parts.scheme!r} is not supported; use one of {', '.join(_SCHEMES)}")
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise bad("a file URL names an absolute local path, file:///path/to/repo")
        return url
    if not parts.hostname or parts.hostname.startswith("-"):
        raise bad("the host is missing")
    if parts.password is not None or (scheme != "ssh" and parts.username is not None):
        raise InvalidRequest(
            f"RepositoryUrl {display_url(url)!r} must not contain credentials;"
            " use a connection (SourceConfiguration.AuthenticationConfiguration.ConnectionArn)"
        )
    if port == 0:
        raise bad("port 0 is not a port")
    why = link_local_reason(parts.hostname)
    if why:
        raise bad(why)
    # Smart HTTP may serve a repository at a host's root; ssh and GitHub need a path.
    if parts.path.strip("/") == "" and (scheme == "ssh" or parts.hostname == "github.com"):
        raise bad("it names no repository path")
    return url


def display_url(url: str) -> str:
    """The URL without any password or token, for messages and logs."""
    if "://" not in url:
        return url
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<unparseable URL>"
    if "@" not in parts.netloc:
        return url
    user = f"{parts.username}@" if parts.scheme == "ssh" and parts.username else ""
    netloc = f"{user}{host}" + (f":{port}" if port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def branch_ref(branch: str) -> bytes:
    name = branch.removeprefix("refs/heads/")
    if not name or any(c.isspace() for c in name) or ".." in name or name.startswith("-"):
        raise InvalidRequest(f"branch {branch!r} is not a valid branch name")
    return b"refs/heads/" + name.encode("utf-8")


def checkout_ref(name: str) -> bytes:
    """A branch name (or ``refs/heads/<b>``) or ``refs/tags/<t>`` as a full ref."""
    if not name.startswith("refs/tags/"):
        return branch_ref(name)
    tag = name[10:]
    if not tag or any(c.isspace() for c in tag) or ".." in tag or tag.startswith("-"):
        raise InvalidRequest(f"tag {tag!r} is not a valid tag name")
    return name.encode("utf-8")


def ref_label(ref: bytes) -> str:
    """``branch main`` or ``tag v1.2.0``, for messages."""
    if ref.startswith(b"refs/tags/"):
        return "tag " + ref[10:].decode("utf-8", "replace")
    return "branch " + ref[11:].decode("utf-8", "replace")
