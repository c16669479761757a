"""The `serve` command, the only one that runs the agent itself (imported when called)."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
from pathlib import Path
from typing import Annotated

import typer

from ..config import load_settings
from ..filemodes import UMASK
from .base import ConfigOpt, _run

M_ARENA_MAX = -8  # glibc's mallopt parameter behind MALLOC_ARENA_MAX
ARENAS = 2


def _few_malloc_arenas() -> None:
    """glibc gives a thread that allocates an arena of its own, up to 8 per core; the
    agent's many mostly idle threads (one log follower per instance) then keep memory
    they seldom use. With 100 services: RSS 164 MB, with two arenas 147 MB
    (bench/bulk.py). The same as MALLOC_ARENA_MAX=2, which wins when it is set; other
    C libraries are left alone."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, ARENAS)


def serve(
    config: ConfigOpt = None,
    listen_host: Annotated[str | None, typer.Option(help="API address")] = None,
    listen_port: Annotated[int | None, typer.Option(help="API port (default 8780)")] = None,
    http_port: Annotated[int | None, typer.Option(help="port services answer on")] = None,
    base_domain: Annotated[str | None, typer.Option(help="services at <name>.<domain>")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="state directory")] = None,
) -> None:
    """Run the agent: API, operations and their jobs."""
    from ..agent import Agent
    from ..api.server import serve as serve_agent

    _few_malloc_arenas()  # before the agent's threads allocate
    os.umask(UMASK)  # what the agent creates is its own (filemodes.py)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per Caddy call is noise

    def start() -> None:
        settings = load_settings(
            config,
            listen_host=listen_host,
            listen_port=listen_port,
            http_port=http_port,
            base_domain=base_domain,
            data_dir=data_dir,
        )
        serve_agent(Agent(settings))

    _run(start)
