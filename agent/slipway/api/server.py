"""The agent behind its HTTP server: the one place the two meet, so the agent never
imports the API that serves it."""

from __future__ import annotations

import logging

import uvicorn

from ..agent import Agent
from .app import create_app

log = logging.getLogger("slipway")


def serve(agent: Agent) -> None:
    """Start the agent's jobs, serve the API until stopped, then stop the jobs."""
    agent.start()
    settings = agent.settings
    log.info(
        "slipway listening on %s; services at http://<name>.%s:%s",
        settings.endpoint,
        settings.base_domain,
        settings.http_port,
    )
    try:
        uvicorn.run(
            create_app(agent),
            host=settings.listen_host,
            port=settings.listen_port,
            log_level="warning",
        )
    finally:
        agent.stop()
