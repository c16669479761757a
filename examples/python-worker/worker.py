"""python-worker: slipway's example worker service (no HTTP port), standard library only.

Logs one line a second, ``tick N version V``, to stdout. It crashes on purpose (exit
code 3, after the line ``crashing on purpose``) when told to: after CRASH_AFTER ticks,
or once the file CRASH_FILE names exists (it removes the file, so a restart runs on:
``docker exec <container> touch /tmp/crash`` makes one crash). Stops cleanly on SIGTERM.
"""

from __future__ import annotations

import os
import signal
import sys
import time

stopping = False


def stop(_signum: int, _frame: object) -> None:
    global stopping
    stopping = True


def main() -> int:
    signal.signal(signal.SIGTERM, stop)
    version = os.environ.get("VERSION", "?")
    crash_after = int(os.environ.get("CRASH_AFTER") or 0)
    crash_file = os.environ.get("CRASH_FILE")
    print(f"worker version {version} started", flush=True)
    tick = 0
    while not stopping:
        tick += 1
        print(f"tick {tick} version {version}", flush=True)
        told = bool(crash_file) and os.path.exists(crash_file)
        if told:
            os.remove(crash_file)
        if told or (crash_after and tick >= crash_after):
            print("crashing on purpose", flush=True)
            return 3
        time.sleep(1)
    print(f"worker version {version} stopping", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
