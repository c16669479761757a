"""Following the classic builder's output: the build log, the current step, a tail.

Pure (chunks of ``client.api.build``'s decoded stream in, state and errors out), so
the reading of docker's text can be tested with canned chunks; the builder
(``builder.py``) feeds it while the build runs.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from .dockerfile import Plan, Step
from .errors import BuildFailed

TAIL_LINES = 10
_STEP = re.compile(r"Step \d+/\d+ : (.*)")
_RUNNING = re.compile(r" ---> Running in ([0-9a-f]{12,64})")
_EXIT_CODE = re.compile(r"returned a non-zero code: (\d+)")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class Progress:
    """Follows the build output: logs it, remembers the step, its container and a tail."""

    def __init__(self, plan: Plan, log: Callable[[str], None]) -> None:
        self.plan = plan
        self.log = log
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.step_text = ""
        self.step: Step | None = None
        self.container: str | None = None
        self.image_id: str | None = None
        self._partial = ""
        self._cached_deps = 0

    def feed(self, chunk: Mapping[str, Any]) -> None:
        if "error" in chunk or "errorDetail" in chunk:
            self.flush()
            detail = chunk.get("errorDetail") or {}
            raise self.failure(str(detail.get("message") or chunk.get("error") or "unknown"))
        if "stream" in chunk:
            text = self._partial + str(chunk["stream"])
            *lines, self._partial = text.split("\n")
            for line in lines:
                self._line(line.rstrip("\r"))
        aux = chunk.get("aux")
        if isinstance(aux, Mapping) and aux.get("ID"):
            self.image_id = str(aux["ID"])
        if "status" in chunk and not chunk.get("progressDetail"):
            self._line(" ".join(str(chunk[k]) for k in ("status", "id") if chunk.get(k)))

    def flush(self) -> None:
        if self._partial:
            self._line(self._partial)
            self._partial = ""

    def _line(self, line: str) -> None:
        line = _ANSI.sub("", line)  # the classic builder paints a step's stderr red
        if not line.strip():
            return
        self.log(f"[Build] {line}")
        step = _STEP.fullmatch(line)
        if not line.startswith((" ---> ", "Removing intermediate container")):
            if step:  # the tail is the current step's own output
                self.tail.clear()
            self.tail.append(line)
        if step:
            self.step_text = step[1]
            self.step = self.plan.steps.get(step[1])
            self.container = None
            return
        running = _RUNNING.match(line)
        if running:
            self.container = running[1]
        elif line.startswith(" ---> Using cache") and self.step and self.step.before_source:
            self._cached_deps += 1
            if self._cached_deps == self.plan.dependency_steps:
                self.log("[AppRunner] Dependency layer reused from the build cache")
        elif line.startswith("Removing intermediate container"):
            self.container = None

    def failure(self, message: str) -> BuildFailed:
        self.log(f"[Build] {message}")
        self.tail.append(message)
        output = "\n".join(self.tail)
        if self.step is not None:
            code = _EXIT_CODE.search(message)
            status = f"exit code {code[1]}" if code else message
            error = BuildFailed(
                f"{self.step.phase} command failed ({status}): {self.step.command}\n"
                f"last output:\n{output}",
                command=self.step.command,
                output=self.tail,
            )
            error.before_source = self.step.before_source
            return error
        hint = ""
        if self.step_text.startswith("FROM"):
            hint = " (is the base image on this host? scripts/build-base-images makes it)"
        return BuildFailed(
            f"build step failed: {self.step_text or 'build'}: {message}{hint}\n"
            f"last output:\n{output}",
            output=self.tail,
        )
