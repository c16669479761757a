"""How a build fails, in one module below the rest of ``builds/``.

The Dockerfile rendering (a bad build env name), the reader of the builder's output (a
failed step) and the builder (a timeout) all raise these, so they sit beneath all three::

    SlipwayError
    └── BuildFailed            the revision does not build (terminal for that revision)
        └── BuildLimitReached  it crossed one of the build's limits (``setting`` names it)
            └── BuildTimeout   it took longer than the build timeout and was stopped
    BackendError           docker itself failed or went away (passing; from errors.py)
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import SlipwayError


class BuildFailed(SlipwayError):
    """The revision did not build; ``command`` is the build command that failed, if one did."""

    def __init__(
        self, message: str, *, command: str | None = None, output: Sequence[str] = ()
    ) -> None:
        super().__init__(message)
        self.command = command
        self.output = tuple(output)
        self.before_source = False  # failed in the dependency layer (then retried)


class BuildLimitReached(BuildFailed):
    """The build crossed a limit and was stopped or refused; ``setting`` is the limit's."""

    def __init__(
        self,
        message: str,
        *,
        setting: str,
        command: str | None = None,
        output: Sequence[str] = (),
    ) -> None:
        super().__init__(message, command=command, output=output)
        self.setting = setting


class BuildTimeout(BuildLimitReached):
    """The build ran past the builder's timeout and was stopped."""
