"""Runtime health of live instances, between deployments.

Docker's restart policy brings a crashed instance back, with its own growing
back-off, so a crash loop is slowed by the engine, not hammered by slipway; the
upkeep reports each crash and, once, the loop (and, on a cluster, an instance the
engine moved off a lost node, naming both nodes). An instance that stays up but
fails its health check ``UnhealthyThreshold`` times in a row, or that vanished,
is replaced by a fresh one of the same revision, which joins the route only
once healthy. Decisions are pure functions over plain data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .backends import Instance

CRASH_LOOP = 5  # restarts of one instance that make it a crash loop


@dataclass
class Seen:
    """What the upkeep last saw of one instance."""

    restart_count: int = 0
    failures: int = 0
    looping: bool = False
    node: str | None = None  # on a cluster, where it ran


@dataclass(frozen=True)
class Verdict:
    reports: tuple[str, ...] = ()
    replace: tuple[Instance, ...] = ()
    missing: int = 0  # instances to start because fewer than MinSize run


@dataclass
class Upkeep:
    seen: dict[str, Seen] = field(default_factory=dict)

    def judge(
        self,
        live: list[Instance],
        healthy: dict[str, bool],
        min_size: int,
        unhealthy_threshold: int,
    ) -> Verdict:
        """What to say and do about a service's live instances. ``healthy`` holds this
        round's health check of each running instance."""
        reports, replace = [], []
        for inst in live:
            # First sight counts from zero: a restart just before it is still reported.
            seen = self.seen.setdefault(inst.id, Seen(node=inst.node))
            moved = inst.running and seen.node is not None and inst.node != seen.node
            if moved:
                reports.append(
                    f"instance {inst.name} left node {seen.node}; the engine runs it on"
                    f" node {inst.node} now, and its route follows"
                )
            if inst.running:
                seen.node = inst.node
            if inst.restart_count > seen.restart_count:
                code = f" with exit code {inst.exit_code}" if inst.exit_code else ""
                if not moved:
                    reports.append(
                        f"instance {inst.name} exited{code}; the engine restarted it"
                        f" (restart {inst.restart_count})"
                    )
                seen.restart_count = inst.restart_count
                if inst.restart_count >= CRASH_LOOP and not seen.looping:
                    seen.looping = True
                    reports.append(
                        f"instance {inst.name} is in a crash loop ({inst.restart_count}"
                        " restarts); the engine backs off between restarts"
                    )
            if inst.id in healthy:
                seen.failures = 0 if healthy[inst.id] else seen.failures + 1
                if seen.failures >= unhealthy_threshold:
                    reports.append(
                        f"instance {inst.name} failed its health check {seen.failures} times"
                        " in a row; replacing it"
                    )
                    replace.append(inst)
                    seen.failures = 0
        present = {i.id for i in live}
        for gone in set(self.seen) - present:
            del self.seen[gone]
        running = [i for i in live if i.running and i not in replace]
        missing = max(0, min_size - len(running) - len(replace))
        if missing and not any(i.state == "restarting" for i in live):
            reports.append(f"{missing} instance(s) missing; starting replacements")
        else:
            missing = 0
        return Verdict(tuple(reports), tuple(replace), missing)
