"""The host fence: iptables rules, owned by slipway, that keep instances and builds off
the host's own services, off the link-local range (a cloud's metadata address) and off
each other's networks.

Docker already keeps two bridge networks apart, but not a container from the host it
runs on: the agent's API, Caddy's admin API, the route DNS responder or the registry,
bound beyond loopback by an operator, would answer any instance. Two chains of slipway's
own, entered only from slipway's bridges (named ``slw-…``, ``docker_networks.py``):

- ``SLIPWAY-FENCE-HOST``, jumped to from INPUT (to any of the host's addresses): new
  connections are refused but at the ports every client may use (Caddy's ``http_port``
  and ``https_port``, and ``fence_allow_ports``, e.g. a proxy on the host); link-local
  is refused even there, for a host that holds 169.254.169.254 itself.
- ``SLIPWAY-FENCE``, jumped to from DOCKER-USER (what the host routes onward):
  link-local, another slipway network, and a port published on the host by another
  container (a connection Docker's DNAT turned toward it) are refused; the internet,
  and package registries on it, are not.

An instance of a service with a VPC connector also joins networks that are not
slipway's (``docker_vpc.py``), and Docker may route its traffic out through one of
them (the network whose name sorts first gives the default route). Two more chains,
jumped to from INPUT and DOCKER-USER for every packet, hold each such instance's
address on such a bridge to the same two chains: ``SLIPWAY-FENCE-VPC-IN`` and
``SLIPWAY-FENCE-VPC`` (traffic that stays in the joined network passes: that is what the
connector is for). The other containers of that network are not slipway's to fence.

Replies of established connections pass: Caddy and the health probes reach instances
through their published ports. Refused rather than dropped (``icmp-admin-prohibited``):
a build's pip fails at once with "No route to host" instead of hanging for TCP's
timeout, and a test tells the fence from a closed port (ECONNREFUSED).

Every rule is made by a pure function below; ``HostFence`` writes both chains in one
``iptables-restore --noflush`` (a chain it names is flushed first, so a refresh never
doubles a rule) and inserts each jump once.
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from ..errors import BackendError, InvalidRequest

BRIDGE_PREFIX = "slw-"
SLIPWAY_BRIDGES = BRIDGE_PREFIX + "+"
FORWARD_CHAIN = "SLIPWAY-FENCE"
HOST_CHAIN = "SLIPWAY-FENCE-HOST"
VPC_HOST_CHAIN = "SLIPWAY-FENCE-VPC-IN"
VPC_FORWARD_CHAIN = "SLIPWAY-FENCE-VPC"
LINK_LOCAL = "169.254.0.0/16"
SUBNET_PREFIX = 24  # each network a /24 of the pool: 254 instances

_REFUSE = ("-j", "REJECT", "--reject-with", "icmp-admin-prohibited")
_REPLIES = ("-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "RETURN")

Rule = tuple[str, ...]
# An instance on a network that is not slipway's: (that network's bridge, its address).
Member = tuple[str, str]


@dataclass(frozen=True)
class Isolation:
    """How services and builds are kept apart on the network; each field is a setting
    (``network_pool``, ``fence``, ``fence_allow_ports``; ``host_ports`` are Caddy's
    ``http_port`` and ``https_port``)."""

    pool: str = "172.28.0.0/16"  # carved into one /24 per service, and one for builds
    fence: bool = True
    host_ports: tuple[int, ...] = (80, 443)
    allow_ports: tuple[str, ...] = ()  # more host ports open to instances and builds

    def ports(self) -> list[int]:
        """The host's ports instances and builds may reach, as any client could."""
        return sorted({*self.host_ports, *(int(p) for p in self.allow_ports)})

    def subnets(self) -> Iterable[ipaddress.IPv4Network]:
        return ipaddress.IPv4Network(self.pool).subnets(new_prefix=SUBNET_PREFIX)

    def check(self) -> None:
        """Refuse settings that would not isolate, naming the setting."""
        try:
            pool = ipaddress.IPv4Network(self.pool)
        except ValueError as exc:
            raise InvalidRequest(
                f"network_pool {self.pool!r} is not an IPv4 network: {exc}"
            ) from exc
        if not pool.is_private or pool.is_loopback or pool.is_link_local:
            raise InvalidRequest(f"network_pool {self.pool} is not a private network")
        if pool.prefixlen > SUBNET_PREFIX:
            raise InvalidRequest(f"network_pool {self.pool} is smaller than a /{SUBNET_PREFIX}")
        for port in self.allow_ports:
            if not str(port).isdigit() or not 0 < int(port) < 65536:
                raise InvalidRequest(f"fence_allow_ports: {port!r} is not a port number")


def jumps(inlet: str = SLIPWAY_BRIDGES, vpc: bool = True) -> list[tuple[str, Rule]]:
    """``(chain, rule)`` of the ways into the fence: what comes in at ``inlet`` (slipway's
    bridges; a Swarm node's ``docker_gwbridge``) enters, and with ``vpc`` every packet
    passes the VPC chains, which send on only slipway's instances."""
    bridges = ("-i", inlet)
    entries = [
        ("INPUT", (*bridges, "-j", HOST_CHAIN)),
        ("DOCKER-USER", (*bridges, "-j", FORWARD_CHAIN)),
    ]
    if vpc:
        entries += [("INPUT", ("-j", VPC_HOST_CHAIN)), ("DOCKER-USER", ("-j", VPC_FORWARD_CHAIN))]
    return entries


def host_rules(ports: Iterable[int]) -> list[Rule]:
    """``SLIPWAY-FENCE-HOST``: to the host itself, only ``ports``, never link-local."""
    rules: list[Rule] = [_REPLIES, ("-d", LINK_LOCAL, *_REFUSE)]
    for port in sorted(set(ports)):
        rules += [("-p", proto, "--dport", str(port), "-j", "RETURN") for proto in ("tcp", "udp")]
    return [*rules, _REFUSE]


def forward_rules(
    bridges: Iterable[str], hosts: Iterable[str] = (), others: str = SLIPWAY_BRIDGES
) -> list[Rule]:
    """``SLIPWAY-FENCE``: routed onward, anywhere but link-local, another slipway network
    (``others``) or a port published on the host; a network's own members keep reaching
    each other (with br_netfilter, traffic inside one bridge passes FORWARD too).
    ``hosts`` (a cluster's node addresses) are held to the host chain's ports, as the
    host itself is: a port another node publishes is no more open than one of this one."""
    rules: list[Rule] = [
        _REPLIES,
        ("-d", LINK_LOCAL, *_REFUSE),
        ("-m", "conntrack", "--ctstate", "DNAT", *_REFUSE),
    ]
    rules += [("-d", f"{host}/32", "-j", HOST_CHAIN) for host in sorted(set(hosts))]
    rules += [("-i", bridge, "-o", bridge, "-j", "RETURN") for bridge in sorted(set(bridges))]
    return [*rules, ("-o", others, *_REFUSE)]


def vpc_rules(members: Iterable[Member]) -> tuple[list[Rule], list[Rule]]:
    """``SLIPWAY-FENCE-VPC-IN`` and ``SLIPWAY-FENCE-VPC``: an instance's address on a
    joined network goes through the fence's chains like its own network's traffic, but
    for what stays inside that network."""
    host: list[Rule] = []
    forward: list[Rule] = []
    for bridge, address in sorted(set(members)):
        source = ("-i", bridge, "-s", f"{address}/32")
        host.append((*source, "-j", HOST_CHAIN))
        forward.append((*source, "!", "-o", bridge, "-j", FORWARD_CHAIN))
    return host, forward


def restore_input(
    ports: Iterable[int],
    bridges: Iterable[str],
    members: Iterable[Member] = (),
    forward: list[Rule] | None = None,
) -> str:
    """The chains as ``iptables-restore`` input: declared (so flushed), then filled;
    ``forward`` replaces ``forward_rules(bridges)`` (a Swarm node's, ``fence_node.py``)."""
    chains = (HOST_CHAIN, FORWARD_CHAIN, VPC_HOST_CHAIN, VPC_FORWARD_CHAIN)
    vpc_host, vpc_forward = vpc_rules(members)
    lines = ["*filter", *(f":{chain} - [0:0]" for chain in chains)]
    for chain, rules in (
        (HOST_CHAIN, host_rules(ports)),
        (FORWARD_CHAIN, forward_rules(bridges) if forward is None else forward),
        (VPC_HOST_CHAIN, vpc_host),
        (VPC_FORWARD_CHAIN, vpc_forward),
    ):
        lines += [" ".join(("-A", chain, *rule)) for rule in rules]
    return "\n".join([*lines, "COMMIT", ""])


Run = Callable[..., subprocess.CompletedProcess[str]]


class HostFence:
    """Installs the fence with the host's iptables; safe to repeat."""

    def __init__(
        self,
        ports: Iterable[int],
        run: Run = subprocess.run,
        which: Callable[[str], str | None] = shutil.which,
    ) -> None:
        missing = [tool for tool in ("iptables", "iptables-restore") if not which(tool)]
        if missing:
            raise BackendError(
                f"fence: {' and '.join(missing)} not found; install iptables, or set"
                " fence: false to run instances and builds without the host fence"
            )
        self.ports = list(ports)
        self._run = run

    def install(self, bridges: Iterable[str], members: Iterable[Member] = ()) -> None:
        """The chains, rewritten for these bridges and VPC members, and the jumps."""
        text = restore_input(self.ports, bridges, members)
        self._call(["iptables-restore", "-w", "--noflush"], text)
        for chain, rule in jumps():
            if self._call(["iptables", "-w", "-C", chain, *rule], check=False).returncode:
                self._call(["iptables", "-w", "-I", chain, "1", *rule])

    def lift(self) -> None:
        """Take the jumps out (``fence: false``): the chains stay, entered by nothing."""
        for chain, rule in jumps():
            while not self._call(["iptables", "-w", "-C", chain, *rule], check=False).returncode:
                self._call(["iptables", "-w", "-D", chain, *rule])

    def _call(
        self, argv: Sequence[str], stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        try:
            done = self._run(list(argv), input=stdin, capture_output=True, text=True)
        except OSError as exc:
            raise BackendError(f"fence: {argv[0]} failed: {exc}") from exc
        if check and done.returncode:
            raise BackendError(
                f"fence: {' '.join(argv[:4])} failed ({done.returncode}):"
                f" {done.stderr.strip()} (the fence needs root and Docker's iptables"
                " chains; or set fence: false)"
            )
        return done
