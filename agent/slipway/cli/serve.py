"""The `serve` command, the only one that runs the agent itself (imported when called)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from ..config import load_settings
from .base import ConfigOpt, _run


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
