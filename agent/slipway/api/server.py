"""The agent behind its HTTP server: the one place the two meet, so the agent never
imports the API that serves it."""

from __future__ import annotations

import asyncio
import logging
import sys

import uvicorn
from uvicorn.main import STARTUP_FAILURE

from ..agent import Agent
from .app import create_app

log = logging.getLogger("slipway")

TICK_SECONDS = 1.0  # uvicorn's housekeeping: the Date header, and a look for a shutdown


class QuietServer(uvicorn.Server):
    """uvicorn's server with its housekeeping tick once a second instead of ten times.
    The tick only refreshes the Date header (once a second either way) and looks for a
    shutdown asked by a signal, which may now wait up to a second; on an idle agent the
    ten wake-ups a second were 0.23% of a core, the largest part of what an agent with
    no services spends (measured per thread on this 2-core host)."""

    async def main_loop(self) -> None:
        ticks = round(TICK_SECONDS * 10)  # uvicorn counts tenths of a second
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + ticks) % 864000
            await asyncio.sleep(TICK_SECONDS)
            should_exit = await self.on_tick(counter)


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
    server = QuietServer(
        uvicorn.Config(
            create_app(agent),
            host=settings.listen_host,
            port=settings.listen_port,
            log_level="warning",
        )
    )
    try:
        server.run()
    except KeyboardInterrupt:  # as uvicorn.run: a Ctrl-C is a stop
        pass
    finally:
        agent.stop()
    if not server.started:  # as uvicorn.run: the port could not be served
        sys.exit(STARTUP_FAILURE)
