"""What a failed pull means: the daemon's error text mapped to the registry error a
caller can act on (unreachable: retry; refused credentials or no such image: fail)."""

from __future__ import annotations

from ..errors import (
    BackendError,
    ImageNotFound,
    RegistryAuthFailed,
    RegistryUnreachable,
    SlipwayError,
)

_UNREACHABLE_HINTS = (
    "connection refused",
    "no such host",
    "i/o timeout",
    "timeout exceeded",
    "network is unreachable",
    "no route to host",
    "tls handshake timeout",
)
_AUTH_HINTS = (
    "unauthorized",
    "authentication required",
    "no basic auth credentials",
    "denied: ",
    "incorrect username or password",
)
_NOT_FOUND_HINTS = (
    "not found",
    "manifest unknown",
    "does not exist",
    "pull access denied",
    "name unknown",
)


def pull_error(image: str, message: str) -> SlipwayError:
    """Map a daemon's pull error text to the registry error a caller can act on."""
    text = message.lower()
    if any(hint in text for hint in _UNREACHABLE_HINTS):
        return RegistryUnreachable(f"registry for {image} unreachable: {message}")
    if "pull access denied" not in text and any(hint in text for hint in _AUTH_HINTS):
        return RegistryAuthFailed(f"registry refused credentials for {image}: {message}")
    if any(hint in text for hint in _NOT_FOUND_HINTS):
        return ImageNotFound(f"image {image} not found: {message}")
    return BackendError(f"pulling {image} failed: {message}")
