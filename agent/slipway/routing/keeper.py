"""Keeps a route DNS responder answering, so Caddy finds each route's instances.

Where systemd runs the host, ``slipway-dns.service`` answers and the agent only checks
that it serves this agent's table. Elsewhere the agent runs the responder
(``python -m slipway.routing.routedns``) as a plain child process: in a session of its
own, so a Ctrl-C in the agent's terminal does not reach it, with its output appended
to a log file. The reconcile calls ``keep`` every pass, which starts another when the
child has died or no longer answers.

A child outlives its parent's ``kill -9``, so the routes keep resolving while the agent
is down, and the next agent finds that responder answering and uses it rather than
start a second one. It knows the responder by the table it serves (a TXT record,
``routedns.table_id``) and refuses one that serves another agent's table: two agents
writing routes to one address would undo each other's.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from ..errors import RouterError
from .routedns import serving, table_id

START_SECONDS = 5.0  # how long a started responder has to answer

log = logging.getLogger("slipway.routing.keeper")


class RouteDnsKeeper:
    """The responder at ``listen`` serving ``table``: whoever started it, keep it answering."""

    def __init__(self, listen: str, table: Path, log_file: Path) -> None:
        self.listen = listen
        self.table = Path(table)
        self.log_file = Path(log_file)
        self._process: subprocess.Popen[bytes] | None = None  # the responder started here
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        """The pid of the responder this keeper started, while it runs."""
        if self._process is None or self._process.poll() is not None:
            return None
        return self._process.pid

    def keep(self) -> int | None:
        """Make sure a responder answers: None if one already does (systemd's, or one an
        earlier agent started), else the pid of the one started now. Cheap when one
        answers; ``RouterError`` when it serves another table, or when a started one
        does not answer within ``START_SECONDS``."""
        with self._lock:
            served = serving(self.listen)
            if served is not None:
                self._check_source(served)
                return None
            self._end_own()
            return self._start()

    def _check_source(self, served: str) -> None:
        if served != table_id(self.table):
            raise RouterError(
                f"the route DNS responder at {self.listen} serves another table than"
                f" {self.table}: another slipway uses that address; give this one its own"
                " route_dns"
            )

    def _end_own(self) -> None:
        """Ours does not answer: reap it if it died, kill it if it hangs (it holds the port)."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            log.warning("route DNS responder %d does not answer: killing it", process.pid)
            process.kill()
            process.wait()
        else:
            log.warning(
                "route DNS responder %d exited with %s: starting another",
                process.pid,
                process.returncode,
            )

    def _start(self) -> int | None:
        """Start a responder and wait until it answers; None when another took the port
        first (and serves our table)."""
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            "-m",
            "slipway.routing.routedns",
            "--listen",
            self.listen,
            "--table",
            str(self.table),
        ]
        with open(self.log_file, "ab") as out:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                close_fds=True,  # never hold the agent's sockets past the agent
                start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            served = serving(self.listen, timeout=0.1)
            if served is not None:
                if process.poll() is not None:  # lost a race: another responder took the port
                    self._check_source(served)
                    return None
                self._process = process
                log.info("route DNS responder %d answers on %s", process.pid, self.listen)
                return process.pid
            if process.poll() is not None:
                break
            time.sleep(0.05)
        if process.poll() is None:
            process.kill()
            process.wait()
        raise RouterError(
            f"route DNS responder on {self.listen} did not answer within {START_SECONDS:g}s "
            f"(exit code {process.returncode}); {self.log_file} ends:\n{_tail(self.log_file)}"
        )


def _tail(path: Path, size: int = 2000) -> str:
    try:
        return path.read_bytes()[-size:].decode(errors="replace")
    except OSError as exc:
        return f"(unreadable: {exc})"
