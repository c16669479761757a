"""How much a git fetch may cost: the bounds that keep a hostile repository (a "git
bomb": a pack of a few KB whose trees name one big blob a million times) from
filling the agent's memory, the disk or the time of an operation.

Each bound is a setting (``git_*``). They are checked as the data arrives: the pack
while it is downloaded (``git_pack.PackFile``), its objects before dulwich indexes
them (``git_pack.scan_pack``), the commit's tree before a file is written
(``git_tree.measure_tree``), and the deadline (``git_pack.Deadline``) at each of those
steps. This module imports no dulwich: the settings (and so the CLI) read it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InvalidRequest

MB = 1024 * 1024


@dataclass(frozen=True)
class GitLimits:
    """One fetch's bounds; each field is the setting ``git_<field>``."""

    max_pack_mb: int = 512  # bytes downloaded for one fetch
    max_objects: int = 500_000  # objects in its pack
    # One object inflated: dulwich holds an object whole while it indexes the pack,
    # so this bounds the agent's memory for one fetch. GitHub refuses files over 100 MB.
    max_blob_mb: int = 100
    max_checkout_mb: int = 2048  # bytes of the files written
    max_files: int = 200_000  # files, directories and links written
    fetch_timeout: float = 600.0  # seconds for the whole fetch and checkout

    def check(self) -> None:
        """Refuse bounds that would not bound anything, naming the setting."""
        for name in ("max_pack_mb", "max_objects", "max_blob_mb", "max_checkout_mb", "max_files"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise InvalidRequest(
                    f"git_{name} must be a whole number of 1 or more, not {value!r}"
                )
        if not self.fetch_timeout > 0:
            raise InvalidRequest(
                f"git_fetch_timeout must be a number of seconds above 0, not {self.fetch_timeout!r}"
            )
