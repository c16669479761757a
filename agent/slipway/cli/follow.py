"""Following the agent from a terminal: an operation until it ends (``--wait``), and any
polling loop across an agent restart.

An operation is followed through its deployment log (the ``[AppRunner]``/``[Build]``
lines the API's logs endpoint serves) for the steps, and through ListOperations for its
status: the status is the truth, the log only says where it is.
"""

from __future__ import annotations

import re
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import typer

from ..client import Client, Unreachable
from ..errors import SlipwayError
from .base import _fail

# Seconds a follower keeps trying to reach an agent that went away (a restart takes a few).
RECONNECT_SECONDS = 120.0
POLL_SECONDS = 0.5
ENDED = ("SUCCEEDED", "FAILED", "ROLLBACK_SUCCEEDED", "ROLLBACK_FAILED")
# The deployment log's lines that begin a step, in the order a deployment takes them.
STEPS = (
    (re.compile(r"\[AppRunner\] Pulling source code"), "fetch"),
    (re.compile(r"\[AppRunner\] Build started"), "build"),
    (re.compile(r"\[Build\] Step (\d+)/(\d+) "), "build step {0}/{1}"),
    (re.compile(r"\[AppRunner\] (Pulling|Redeploying) "), "image"),
    (re.compile(r"\[AppRunner\] Starting \d+ instance"), "start"),
    (re.compile(r"\[AppRunner\] Waiting for .* health check"), "health"),
    (re.compile(r"\[AppRunner\] Health checks passed"), "switch"),
    (re.compile(r"\[AppRunner\] Draining "), "drain"),
)
BUILD_TAIL = 15


def step_of(line: str) -> str | None:
    """The step a deployment log line begins, if it begins one."""
    for pattern, name in STEPS:
        found = pattern.search(line)
        if found:
            return name.format(*found.groups())
    return None


def reconnecting(call: Callable[[], Any]) -> Any:
    """``call()``, tried again while the agent cannot be reached (it is restarting), for
    up to RECONNECT_SECONDS; other errors end the command as usual."""
    lost_at = None
    while True:
        try:
            result = call()
        except Unreachable as exc:
            if lost_at is None:
                lost_at = time.monotonic()
                typer.echo(f"lost the agent ({exc.message}); reconnecting", err=True)
            elif time.monotonic() - lost_at > RECONNECT_SECONDS:
                _fail(exc)
            time.sleep(1.0)
            continue
        except SlipwayError as exc:
            _fail(exc)
        if lost_at is not None:
            typer.echo("reconnected", err=True)
        return result


class OperationFollower:
    """Prints an operation's steps as they begin (and with ``verbose`` every log line)
    until it ends; the outcome is its status."""

    def __init__(self, client: Client, service_arn: str, operation_id: str, verbose: bool):
        self.client = client
        self.arn = service_arn
        self.op_id = operation_id
        self.verbose = verbose
        self.offset = 0
        self.step: str | None = None
        self.build_lines: deque[str] = deque(maxlen=BUILD_TAIL)
        self.failure = ""
        self.tty = sys.stdout.isatty()

    def run(self) -> dict[str, Any]:
        """The operation's summary once it has ended."""
        while True:
            summary = reconnecting(self._summary)
            self._read_log()
            if summary["Status"] in ENDED:
                self._read_log()  # the lines written as it ended
                self._end_line()
                return summary
            time.sleep(POLL_SECONDS)

    def _summary(self) -> dict[str, Any]:
        token = None
        while True:
            page = self.client.call(
                "ListOperations", ServiceArn=self.arn, **({"NextToken": token} if token else {})
            )
            for op in page["OperationSummaryList"]:
                if op["Id"] == self.op_id:
                    return op
            token = page.get("NextToken")
            if not token:
                return {"Id": self.op_id, "Status": "PENDING"}

    def _read_log(self) -> None:
        params = {"ServiceArn": self.arn, "Stream": f"deployment/{self.op_id}"}
        page = reconnecting(
            lambda: self.client.signed(
                "GET", "/slipway/v1/logs", params={**params, "Offset": self.offset}
            )
        )
        self.offset = page["NextOffset"]
        for event in page["Events"]:
            self._line(event["Message"])

    def _line(self, line: str) -> None:
        if line.startswith("[Build]"):
            self.build_lines.append(line)
        elif line.startswith("[AppRunner] Failed: "):
            self.failure = line.removeprefix("[AppRunner] Failed: ")
        step = step_of(line)
        if self.verbose:
            self._end_line()
            typer.echo(line)
        if step and step != self.step:
            self.step = step
            self._progress(step)

    def _progress(self, step: str) -> None:
        if self.tty and not self.verbose:
            typer.echo(f"\r\033[K==> {step}", nl=False)
        else:
            typer.echo(f"==> {step}")

    def _end_line(self) -> None:
        if self.tty and not self.verbose and self.step:
            typer.echo("")

    def failed_step(self) -> str:
        return self.step or "queued"


def wait_for(
    client: Client, name: str, arn: str, operation_id: str, verbose: bool, show_url: bool = True
) -> None:
    """Follow ``operation_id`` to its end: the outcome, the URL, and an exit code that
    says it (1 when it failed). Ctrl-C stops following, never the operation."""
    follower = OperationFollower(client, arn, operation_id, verbose)
    try:
        summary = follower.run()
    except KeyboardInterrupt:
        typer.echo(
            f"\nstopped following; operation {operation_id} goes on"
            f" (slipway logs {name} --deployment {operation_id} --follow)",
            err=True,
        )
        raise typer.Exit(130) from None
    status = summary["Status"]
    if status == "SUCCEEDED":
        typer.echo(f"{summary.get('Type', 'operation')} {operation_id} succeeded")
        if show_url:
            service = reconnecting(lambda: client.call("DescribeService", ServiceArn=arn))
            typer.echo(f"URL: http://{service['Service']['ServiceUrl']}")
        return
    typer.echo(f"operation {operation_id} {status} at step {follower.failed_step()}", err=True)
    if follower.failure:
        typer.echo(f"error: {follower.failure}", err=True)
    if follower.build_lines and not verbose:
        typer.echo("last build lines:", err=True)
        for line in follower.build_lines:
            typer.echo(f"  {line}", err=True)
    raise typer.Exit(1)
