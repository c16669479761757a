"""The host fence on a Swarm node: the same chains as ``fence.py``'s, entered from
``docker_gwbridge``, as a shell script the node's ``slipway-fence`` task runs.

Where a task's packets pass on its node: its overlay network's bridge lives in a
namespace of Docker's own (the VXLAN traffic between nodes leaves from the node itself,
not through a bridge), while everything else it sends (the internet, the node's own
addresses, another node's) goes out through its leg on ``docker_gwbridge``, routed by
the node; a port published in host mode is Docker's DNAT on the node toward another
container's ``docker_gwbridge`` address. So the jumps enter from ``docker_gwbridge``:
``SLIPWAY-FENCE-HOST`` from INPUT (the node's own addresses: only ``http_port``,
``https_port`` and ``fence_allow_ports``), ``SLIPWAY-FENCE`` from DOCKER-USER
(link-local, a DNAT-ed published port, another container's ``docker_gwbridge`` address,
and every node's address but at those ports: a port another node publishes is what
this node routes toward it). Replies pass: the router reaches instances from outside.

The script installs the chains with ``iptables-restore --noflush`` and the jumps once,
then checks them every ``RECHECK_SECONDS`` and installs again when one is gone (Docker
re-creates DOCKER-USER and its jump when its daemon restarts). The lift script takes the
jumps out and idles, so the global service keeps one task per node either way.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable

from .fence import HOST_CHAIN, forward_rules, host_rules, jumps, restore_input

GATEWAY_BRIDGE = "docker_gwbridge"
RECHECK_SECONDS = 5

# The node's iptables: the one whose tables hold Docker's DOCKER-USER chain.
_PICK = (
    "IPT=iptables\n"
    "$IPT -w -n -L DOCKER-USER >/dev/null 2>&1 || IPT=iptables-legacy\n"
    "WHERE=$(cat /etc/hostname)\n"
)


def node_rules(ports: Iterable[int], nodes: Iterable[str]) -> str:
    """The chains of a node as ``iptables-restore`` input; ``nodes``: every node's
    address, held to the same ``ports`` as the node's own."""
    return restore_input(ports, (), forward=forward_rules((), nodes, others=GATEWAY_BRIDGE))


def _rule(chain: str, rule: tuple[str, ...]) -> str:
    return f"{shlex.quote(chain)} {shlex.join(rule)}"


def install_script(ports: Iterable[int], nodes: Iterable[str]) -> str:
    """``sh -c`` of a node's fence task: install, then keep in place."""
    ports = list(ports)
    entries = jumps(GATEWAY_BRIDGE, vpc=False)
    insert = "\n".join(
        f"  $IPT -w -C {_rule(c, r)} 2>/dev/null || $IPT -w -I {shlex.quote(c)} 1 {shlex.join(r)}"
        for c, r in entries
    )
    # The host chain's last rule (refuse) stands for the chains being there at all.
    checks = [_rule(c, r) for c, r in entries] + [_rule(HOST_CHAIN, host_rules(ports)[-1])]
    present = " && ".join(f"$IPT -w -C {check} 2>/dev/null" for check in checks)
    return (
        "set -eu\n"
        + _PICK
        + f"RULES={shlex.quote(node_rules(ports, nodes))}\n"
        + "apply() {\n"
        + '  printf %s "$RULES" | "$IPT-restore" -w --noflush\n'
        + insert
        + '\n  echo "slipway-fence: installed on $WHERE ($IPT)"\n}\n'
        + "apply\n"
        + f"while sleep {RECHECK_SECONDS}; do\n"
        + f"  if ! {{ {present}; }}; then apply; fi\n"
        + "done\n"
    )


def lift_script() -> str:
    """``sh -c`` of a node's fence task under ``fence: false``: the jumps out, then idle."""
    remove = "\n".join(
        f"while $IPT -w -C {_rule(c, r)} 2>/dev/null; do $IPT -w -D {_rule(c, r)}; done"
        for c, r in jumps(GATEWAY_BRIDGE, vpc=False)
    )
    return (
        "set -eu\n"
        + _PICK
        + remove
        + '\necho "slipway-fence: lifted on $WHERE"\nexec sleep infinity\n'
    )
