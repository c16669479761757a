"""``slipway nodes``: the cluster's nodes (``backend: swarm``) as the agent sees them."""

from __future__ import annotations

from .base import ConfigOpt, JsonOpt, _client, _print_json, _run, _table


def nodes(as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """The cluster's nodes: role, state, availability, CPU units and MB reserved of the
    total, slipway instances on each, and whether the host fence is in place there."""
    client = _client(config)
    rows = _run(lambda: client.signed("GET", "/slipway/v1/nodes"))["Nodes"]
    if as_json:
        _print_json(rows)
        return
    _table(
        [
            {
                "NAME": r["Name"],
                "ROLE": r["Role"] + (" (leader)" if r["Leader"] else ""),
                "STATE": r["State"],
                "AVAILABILITY": r["Availability"],
                "CPU": f"{r['CpuReserved']}/{r['CpuTotal']}",
                "MEMORY MB": f"{r['MemoryReservedMb']}/{r['MemoryTotalMb']}",
                "INSTANCES": r["Instances"],
                "FENCE": "yes" if r.get("Fence") else "no",
            }
            for r in rows
        ],
        ["NAME", "ROLE", "STATE", "AVAILABILITY", "CPU", "MEMORY MB", "INSTANCES", "FENCE"],
    )
