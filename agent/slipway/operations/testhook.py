"""TEST HOOK, not a feature: lets the e2e tests make an operation kill the agent, the way
a real fault (an out-of-memory kill, a segfault in a C library) would, to prove that such
an operation ends FAILED after ``operation_max_interruptions`` restarts instead of
crash-looping the agent (tests/e2e/test_poison.py).

Off unless the environment variable ``SLIPWAY_TEST_CRASH_ON`` names a service; it is
not a setting, and nothing else reads it.
"""

from __future__ import annotations

import logging
import os

CRASH_ON = "SLIPWAY_TEST_CRASH_ON"
EXIT_CODE = 70

log = logging.getLogger("slipway.testhook")


def crash_if_named(service_name: str) -> None:
    """End the agent at once, with no clean-up, when the test hook names this service."""
    if os.environ.get(CRASH_ON) == service_name:
        log.critical("test hook %s=%s: the agent dies now", CRASH_ON, service_name)
        logging.shutdown()
        os._exit(EXIT_CODE)
