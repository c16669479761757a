"""What the benchmarks share: recording a table in BENCHMARKS.md, and a private
registry + Caddy + agent stack like the e2e tests use."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from harness import AgentProcess, CaddyProcess, LocalRegistry  # noqa: E402


def record(section: str, table: str, intro: str = "") -> None:
    """Append ``table`` under ``## section`` in BENCHMARKS.md, opening the section (with
    ``intro``) the first time."""
    path = ROOT / "BENCHMARKS.md"
    heading = f"\n## {section}\n"
    with path.open("a") as fh:
        if heading not in path.read_text():
            fh.write(heading + "\n" + (intro.rstrip() + "\n\n" if intro else ""))
        fh.write("\n" + table + "\n")


@contextmanager
def local_stack(
    **agent_settings: Any,
) -> Iterator[tuple[LocalRegistry, CaddyProcess, AgentProcess]]:
    """A registry, a Caddy and an agent of their own, in a temporary directory."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for part in ("registry", "caddy", "agent"):
            (root / part).mkdir()
        registry = LocalRegistry.start(root / "registry")
        caddy = CaddyProcess(root / "caddy")
        try:
            caddy.start()
            agent = AgentProcess(
                root / "agent", caddy.admin_url, caddy.http_port, **agent_settings
            ).start()
            try:
                yield registry, caddy, agent
            finally:
                agent.kill()
        finally:
            caddy.stop()
            registry.stop()
