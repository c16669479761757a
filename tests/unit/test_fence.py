"""The host fence's rules, made by pure functions, and how they are installed."""

from __future__ import annotations

import subprocess

import pytest

from slipway.backends.fence import (
    FORWARD_CHAIN,
    HOST_CHAIN,
    VPC_FORWARD_CHAIN,
    VPC_HOST_CHAIN,
    HostFence,
    Isolation,
    forward_rules,
    host_rules,
    jumps,
    restore_input,
    vpc_rules,
)
from slipway.errors import BackendError, InvalidRequest

REFUSE = ("-j", "REJECT", "--reject-with", "icmp-admin-prohibited")
REPLIES = ("-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "RETURN")


def test_only_slipway_bridges_enter_the_fence() -> None:
    assert jumps() == [
        ("INPUT", ("-i", "slw-+", "-j", HOST_CHAIN)),
        ("DOCKER-USER", ("-i", "slw-+", "-j", FORWARD_CHAIN)),
        # Every packet passes the VPC chains, which send on slipway's instances only.
        ("INPUT", ("-j", VPC_HOST_CHAIN)),
        ("DOCKER-USER", ("-j", VPC_FORWARD_CHAIN)),
    ]


def test_an_instance_on_a_joined_network_is_fenced_but_inside_that_network() -> None:
    host, forward = vpc_rules([("br-db", "172.30.0.3"), ("br-db", "172.30.0.3")])
    assert host == [("-i", "br-db", "-s", "172.30.0.3/32", "-j", HOST_CHAIN)]
    # What stays on the joined bridge passes (the database); all else is fenced.
    assert forward == [
        ("-i", "br-db", "-s", "172.30.0.3/32", "!", "-o", "br-db", "-j", FORWARD_CHAIN)
    ]
    text = restore_input([80], [], [("br-db", "172.30.0.3")])
    assert f":{VPC_HOST_CHAIN} - [0:0]" in text.splitlines()  # declared: flushed each time
    assert f"-A {VPC_HOST_CHAIN} -i br-db -s 172.30.0.3/32 -j {HOST_CHAIN}" in text


def test_the_host_is_reachable_only_at_the_allowed_ports_and_never_at_link_local() -> None:
    rules = host_rules([443, 80, 80])
    assert rules[0] == REPLIES  # replies to Caddy's and the probes' connections pass
    # Link-local before the open ports: a host holding 169.254.169.254 keeps it shut
    # even at port 80, Caddy's.
    assert rules[1] == ("-d", "169.254.0.0/16", *REFUSE)
    assert rules[2:6] == [
        ("-p", "tcp", "--dport", "80", "-j", "RETURN"),
        ("-p", "udp", "--dport", "80", "-j", "RETURN"),
        ("-p", "tcp", "--dport", "443", "-j", "RETURN"),
        ("-p", "udp", "--dport", "443", "-j", "RETURN"),
    ]
    assert rules[-1] == REFUSE  # every other port of every host address
    assert len(rules) == 7


def test_routed_traffic_reaches_anywhere_but_link_local_other_networks_and_published_ports() -> (
    None
):
    rules = forward_rules(["slw-b", "slw-a", "slw-a"])
    assert rules == [
        REPLIES,
        ("-d", "169.254.0.0/16", *REFUSE),
        ("-m", "conntrack", "--ctstate", "DNAT", *REFUSE),
        ("-i", "slw-a", "-o", "slw-a", "-j", "RETURN"),  # a network's own members
        ("-i", "slw-b", "-o", "slw-b", "-j", "RETURN"),
        ("-o", "slw-+", *REFUSE),  # any other slipway network
    ]


def test_restore_input_declares_both_chains_so_a_refresh_replaces_them() -> None:
    text = restore_input([80], ["slw-a"])
    lines = text.splitlines()
    assert lines[:3] == ["*filter", f":{HOST_CHAIN} - [0:0]", f":{FORWARD_CHAIN} - [0:0]"]
    assert (
        f"-A {HOST_CHAIN} -d 169.254.0.0/16 -j REJECT --reject-with icmp-admin-prohibited" in lines
    )
    assert f"-A {FORWARD_CHAIN} -i slw-a -o slw-a -j RETURN" in lines
    assert lines[-1] == "COMMIT" and text.endswith("\n")


class FakeIptables:
    """Records the commands; ``-C`` of a jump answers as if it were there or not."""

    def __init__(self, present: bool = False, fail: str = "") -> None:
        self.present = present
        self.fail = fail
        self.calls: list[tuple[list[str], str | None]] = []

    def __call__(self, argv: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
        self.calls.append((argv, kwargs.get("input")))
        code = 0
        if "-C" in argv and not self.present:
            code = 1
        if self.fail and argv[0] == self.fail:
            return subprocess.CompletedProcess(argv, 4, "", "Permission denied (you must be root)")
        return subprocess.CompletedProcess(argv, code, "", "")


def test_install_writes_both_chains_at_once_and_inserts_missing_jumps_first() -> None:
    run = FakeIptables(present=False)
    HostFence([80, 443], run=run).install(["slw-a"])
    (restore, text), *rest = run.calls
    assert restore == ["iptables-restore", "-w", "--noflush"]
    assert text == restore_input([80, 443], ["slw-a"])
    assert [argv for argv, _ in rest] == [
        ["iptables", "-w", "-C", "INPUT", "-i", "slw-+", "-j", HOST_CHAIN],
        ["iptables", "-w", "-I", "INPUT", "1", "-i", "slw-+", "-j", HOST_CHAIN],
        ["iptables", "-w", "-C", "DOCKER-USER", "-i", "slw-+", "-j", FORWARD_CHAIN],
        ["iptables", "-w", "-I", "DOCKER-USER", "1", "-i", "slw-+", "-j", FORWARD_CHAIN],
        ["iptables", "-w", "-C", "INPUT", "-j", VPC_HOST_CHAIN],
        ["iptables", "-w", "-I", "INPUT", "1", "-j", VPC_HOST_CHAIN],
        ["iptables", "-w", "-C", "DOCKER-USER", "-j", VPC_FORWARD_CHAIN],
        ["iptables", "-w", "-I", "DOCKER-USER", "1", "-j", VPC_FORWARD_CHAIN],
    ]


def test_install_again_adds_no_second_jump() -> None:
    run = FakeIptables(present=True)
    HostFence([80], run=run).install([])
    assert not [argv for argv, _ in run.calls if "-I" in argv]


def test_lift_takes_out_every_jump_and_only_them() -> None:
    class Twice(FakeIptables):
        def __init__(self) -> None:
            super().__init__(present=True)
            # The fence's jumps, its INPUT one put in twice by hand.
            self.left = {"INPUT": 3, "DOCKER-USER": 2}

        def __call__(self, argv: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
            chain = argv[3]
            if "-D" in argv:
                self.left[chain] -= 1
            self.present = self.left[chain] > 0
            return super().__call__(argv, **kwargs)

    run = Twice()
    HostFence([80], run=run).lift()
    assert run.left == {"INPUT": 0, "DOCKER-USER": 0}
    assert all(argv[2] in ("-C", "-D") for argv, _ in run.calls)


def test_a_failing_iptables_is_an_error_that_says_what_to_do() -> None:
    with pytest.raises(BackendError, match="Permission denied.*needs root.*fence: false"):
        HostFence([80], run=FakeIptables(fail="iptables-restore")).install([])


def test_missing_iptables_is_said_at_once() -> None:
    with pytest.raises(BackendError, match="iptables-restore not found.*fence: false"):
        HostFence([80], run=FakeIptables(), which=lambda t: None if "restore" in t else t)


def test_isolation_settings_that_would_not_isolate_are_refused() -> None:
    Isolation().check()
    Isolation(pool="10.40.0.0/24", allow_ports=("3128",)).check()
    assert Isolation(host_ports=(8080, 443), allow_ports=("3128", "443")).ports() == [
        443,
        3128,
        8080,
    ]
    with pytest.raises(InvalidRequest, match="network_pool 'nonsense' is not an IPv4"):
        Isolation(pool="nonsense").check()
    with pytest.raises(InvalidRequest, match="network_pool 8.8.0.0/16 is not a private"):
        Isolation(pool="8.8.0.0/16").check()
    with pytest.raises(InvalidRequest, match="network_pool 127.0.0.0/16 is not a private"):
        Isolation(pool="127.0.0.0/16").check()
    with pytest.raises(InvalidRequest, match="network_pool 10.1.2.0/25 is smaller than a /24"):
        Isolation(pool="10.1.2.0/25").check()
    for bad in ("-1", "0", "65536", "http", "80/tcp"):
        with pytest.raises(InvalidRequest, match=f"fence_allow_ports: '{bad}' is not a port"):
            Isolation(allow_ports=(bad,)).check()


def test_the_subnets_are_the_pools_24s() -> None:
    subnets = [str(s) for s in Isolation(pool="10.9.0.0/23").subnets()]
    assert subnets == ["10.9.0.0/24", "10.9.1.0/24"]
