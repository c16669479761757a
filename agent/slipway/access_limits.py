"""The pure rules of access keys that settings and the CLI also need: the limits (each a
setting) and how a key's lifetime reads, apart from ``access.py`` so that reading the
settings never loads the store."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import InvalidRequest

_EXPIRY = re.compile(r"(\d+)\s*(m|h|d)")
_EXPIRY_UNITS = {"m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class AccessLimits:
    """Settings ``key_last_used_interval`` and ``policy_max_bytes``."""

    last_used_interval: float = 60.0  # seconds between two writes of a key's last use
    policy_max_bytes: int = 6144  # one policy document, as JSON (IAM's managed policy cap)

    def check(self) -> None:
        """Refuse nonsense, naming the setting."""
        if self.last_used_interval < 0:
            raise InvalidRequest(
                f"key_last_used_interval must be 0 or more, not {self.last_used_interval}"
            )
        if self.policy_max_bytes < 64:
            raise InvalidRequest(
                f"policy_max_bytes must be 64 or more, not {self.policy_max_bytes}"
            )


def parse_expiry(text: str) -> float:
    """``90m``, ``12h`` or ``30d`` as seconds."""
    match = _EXPIRY.fullmatch(text.strip())
    if not match or int(match[1]) == 0:
        raise InvalidRequest(f"Expires: {text!r} is not a duration like 90m, 12h or 30d")
    return int(match[1]) * _EXPIRY_UNITS[match[2]]
