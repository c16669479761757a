"""The CLI's follower: which deployment log lines begin which step, and a poll that
outlives an agent restart."""

from __future__ import annotations

import pytest
import typer

from slipway.cli import follow
from slipway.client import Unreachable
from slipway.errors import ResourceNotFound


@pytest.mark.parametrize(
    ("line", "step"),
    [
        ("[AppRunner] Pulling source code from http://git/x main", "fetch"),
        ("[AppRunner] Build started: slipway/x:abc, runtime python3", "build"),
        ("[Build] Step 3/9 : RUN pip install -r requirements.txt", "build step 3/9"),
        ("[AppRunner] Pulling 127.0.0.1:5000/hello:1", "image"),
        ("[AppRunner] Redeploying slipway/x:abc (no rebuild)", "image"),
        ("[AppRunner] Starting 2 instance(s) of abc", "start"),
        ("[AppRunner] Waiting for 2 instance(s) to pass health checks", "health"),
        ("[AppRunner] Health checks passed; routing traffic to the new instances", "switch"),
        ("[AppRunner] Draining the previous instances", "drain"),
        ("[Build]  ---> Running in 1234", None),
        ("[AppRunner] Commit abcdef0 by someone: message", None),
    ],
)
def test_deployment_log_lines_begin_steps(line, step):
    assert follow.step_of(line) == step


def test_a_poll_waits_out_an_agent_restart(monkeypatch):
    monkeypatch.setattr(follow.time, "sleep", lambda _: None)
    answers = iter([Unreachable("down"), Unreachable("still down"), {"ok": True}])

    def call():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert follow.reconnecting(call) == {"ok": True}


def test_a_poll_gives_up_after_the_reconnect_window(monkeypatch):
    clock = iter(range(0, 10_000, 100))
    monkeypatch.setattr(follow.time, "sleep", lambda _: None)
    monkeypatch.setattr(follow.time, "monotonic", lambda: float(next(clock)))

    def call():
        raise Unreachable("down for good")

    with pytest.raises(typer.Exit):
        follow.reconnecting(call)


def test_other_errors_end_the_command_at_once():
    calls = []

    def call():
        calls.append(1)
        raise ResourceNotFound("no service named x")

    with pytest.raises(typer.Exit):
        follow.reconnecting(call)
    assert calls == [1]
