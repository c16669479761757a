"""routedns and its keeper: the route table file, and real responder processes queried
with dnspython."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from slipway.errors import RouterError
from slipway.routing.keeper import RouteDnsKeeper
from slipway.routing.routedns import RouteTable, answering, route_name, serving, table_id

HELLO = "hello.localhost.route.slipway."


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def kill_pid(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):  # only our own children need reaping
        os.waitpid(pid, 0)


def wait_answering(listen: str, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + 10
    while not answering(listen, timeout=0.1):
        assert process is None or process.poll() is None, "responder exited"
        assert time.monotonic() < deadline, f"nothing answers on {listen}"
        time.sleep(0.05)


def ask(listen: str, name: str, rdtype: str = "A", **kwargs) -> dns.message.Message:
    host, port = listen.rsplit(":", 1)
    query = dns.message.make_query(name, rdtype, **kwargs)
    return dns.query.udp(query, host, port=int(port), timeout=2)


def addresses(response: dns.message.Message) -> list[str]:
    return [rdata.address for rrset in response.answer for rdata in rrset]


@pytest.fixture
def table(tmp_path: Path) -> RouteTable:
    routes = RouteTable(tmp_path / "routes.json")
    routes.write({HELLO: ["127.77.0.1", "127.77.0.2"], "empty.localhost.route.slipway.": []})
    return routes


@pytest.fixture
def listen(table: RouteTable, tmp_path: Path) -> Iterator[str]:
    """``python -m slipway.routing.routedns`` on a free UDP port, serving ``table``."""
    address = f"127.0.0.1:{free_udp_port()}"
    command = [sys.executable, "-m", "slipway.routing.routedns", "--listen", address]
    with (tmp_path / "routedns.log").open("wb") as log:
        process = subprocess.Popen(
            [*command, "--table", str(table.path)], stdout=log, stderr=subprocess.STDOUT
        )
    try:
        wait_answering(address, process)
        yield address
    finally:
        process.kill()
        process.wait()


def test_route_name() -> None:
    assert route_name("Hello.localhost") == HELLO
    assert route_name("api.example.com.") == "api.example.com.route.slipway."


def test_write_is_atomic_and_reports_no_change(tmp_path: Path) -> None:
    routes = RouteTable(tmp_path / "sub" / "routes.json")
    assert routes.read() == {}
    assert routes.write({"Hello.localhost.route.slipway": ["127.77.0.1"]}) is True
    assert routes.read() == {HELLO: ["127.77.0.1"]}
    mtime = routes.path.stat().st_mtime_ns
    assert routes.write({HELLO: ["127.77.0.1"]}) is False
    assert routes.path.stat().st_mtime_ns == mtime
    assert routes.write({HELLO: ["127.77.0.2"]}) is True
    assert routes.read() == {HELLO: ["127.77.0.2"]}
    assert [p.name for p in routes.path.parent.iterdir()] == ["routes.json"]  # no tmp left


def test_write_refuses_what_is_not_ipv4(tmp_path: Path) -> None:
    routes = RouteTable(tmp_path / "routes.json")
    with pytest.raises(ValueError):
        routes.write({HELLO: ["127.77.0.1:8080"]})
    with pytest.raises(ValueError):
        routes.write({HELLO: ["::1"]})
    with pytest.raises(TypeError):
        routes.write({HELLO: "127.77.0.1"})
    assert not routes.path.exists()


def test_read_of_garbage_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "routes.json"
    path.write_text("{not json")
    assert RouteTable(path).read() == {}
    path.write_text("[1, 2]")
    assert RouteTable(path).read() == {}


def test_a_gets_the_ips_with_ttl_1(listen: str) -> None:
    response = ask(listen, HELLO)
    assert response.rcode() == dns.rcode.NOERROR
    assert response.flags & dns.flags.AA
    assert sorted(addresses(response)) == ["127.77.0.1", "127.77.0.2"]
    assert response.answer[0].ttl == 1
    # names are matched without regard to case
    assert sorted(addresses(ask(listen, HELLO.upper()))) == ["127.77.0.1", "127.77.0.2"]


def test_aaaa_and_other_types_of_a_known_name_are_empty_noerror(listen: str) -> None:
    for rdtype in ("AAAA", "MX", "SRV", "TXT"):
        response = ask(listen, HELLO, rdtype)
        assert response.rcode() == dns.rcode.NOERROR, rdtype
        assert response.answer == [], rdtype


def test_unknown_name_is_nxdomain(listen: str) -> None:
    assert ask(listen, "nope.localhost.route.slipway.").rcode() == dns.rcode.NXDOMAIN
    assert ask(listen, "example.com.", "AAAA").rcode() == dns.rcode.NXDOMAIN


def test_a_name_without_ips_is_empty_noerror(listen: str) -> None:
    response = ask(listen, "empty.localhost.route.slipway.")
    assert response.rcode() == dns.rcode.NOERROR
    assert response.answer == []


def test_table_change_is_picked_up_at_once(listen: str, table: RouteTable) -> None:
    assert sorted(addresses(ask(listen, HELLO))) == ["127.77.0.1", "127.77.0.2"]
    # same size, same mtime tick: only the content differs
    for last in range(3, 9):
        assert table.write({HELLO: ["127.77.0.1", f"127.77.0.{last}"]})
        assert sorted(addresses(ask(listen, HELLO))) == ["127.77.0.1", f"127.77.0.{last}"]
    table.write({"other.localhost.route.slipway.": ["127.77.1.1"]})
    assert ask(listen, HELLO).rcode() == dns.rcode.NXDOMAIN
    assert addresses(ask(listen, "other.localhost.route.slipway.")) == ["127.77.1.1"]


def test_missing_table_is_nxdomain_and_broken_one_keeps_the_last(
    listen: str, table: RouteTable
) -> None:
    table.path.write_text("{broken")
    assert sorted(addresses(ask(listen, HELLO))) == ["127.77.0.1", "127.77.0.2"]
    table.path.unlink()
    assert ask(listen, HELLO).rcode() == dns.rcode.NXDOMAIN
    table.write({HELLO: ["127.77.0.9"]})
    assert addresses(ask(listen, HELLO)) == ["127.77.0.9"]


def test_malformed_packets_do_not_stop_it(listen: str) -> None:
    host, port = listen.rsplit(":", 1)
    good = dns.message.make_query(HELLO, "A").to_wire()
    response_bit = bytearray(good)
    response_bit[2] |= 0x80  # QR: a response must not be answered
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for packet in (b"", b"\x00", b"garbage" * 20, good[:15], bytes(response_bit)):
            sock.sendto(packet, (host, int(port)))
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sock.recvfrom(512)
    assert sorted(addresses(ask(listen, HELLO))) == ["127.77.0.1", "127.77.0.2"]


def test_many_instances_fit_a_plain_udp_answer(listen: str, table: RouteTable) -> None:
    ips = [f"127.77.0.{n}" for n in range(1, 201)]
    table.write({HELLO: ips})
    plain = ask(listen, HELLO)  # no EDNS: 512 bytes
    assert not plain.flags & dns.flags.TC
    assert 10 < len(addresses(plain)) < 200
    assert set(addresses(plain)) <= set(ips)
    edns = ask(listen, HELLO, use_edns=0, payload=4096)
    assert sorted(addresses(edns)) == sorted(ips)


def test_answering(listen: str) -> None:
    assert answering(listen)
    assert not answering(f"127.0.0.1:{free_udp_port()}", timeout=0.1)


@pytest.fixture
def spawned() -> Iterator[list[int]]:
    """Pids of responders a test started; killed at teardown."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        kill_pid(pid)


def keeper_for(table: Path, where: Path, listen: str | None = None) -> RouteDnsKeeper:
    return RouteDnsKeeper(listen or f"127.0.0.1:{free_udp_port()}", table, where / "routedns.log")


def test_keep_starts_one_responder(tmp_path: Path, table: RouteTable, spawned: list[int]) -> None:
    keeper = keeper_for(table.path, tmp_path / "data")
    pid = keeper.keep()
    assert pid is not None
    spawned.append(pid)
    assert keeper.pid == pid
    assert sorted(addresses(ask(keeper.listen, HELLO))) == ["127.77.0.1", "127.77.0.2"]
    assert keeper.keep() is None
    assert keeper.pid == pid
    assert (tmp_path / "data" / "routedns.log").exists()


def test_a_responder_serving_another_table_is_refused(
    tmp_path: Path, table: RouteTable, spawned: list[int]
) -> None:
    keeper = keeper_for(table.path, tmp_path / "a")
    pid = keeper.keep()
    assert pid is not None
    spawned.append(pid)
    assert serving(keeper.listen) == table_id(table.path)
    other = keeper_for(tmp_path / "other" / "routes.json", tmp_path / "b", keeper.listen)
    with pytest.raises(RouterError, match="another slipway uses that address"):
        other.keep()
    assert other.pid is None


def test_keep_replaces_its_own_hung_responder(
    tmp_path: Path, table: RouteTable, spawned: list[int]
) -> None:
    keeper = keeper_for(table.path, tmp_path)
    hung = keeper.keep()
    assert hung is not None
    spawned.append(hung)
    os.kill(hung, signal.SIGSTOP)
    assert not answering(keeper.listen)
    pid = keeper.keep()
    assert pid is not None and pid != hung
    spawned.append(pid)
    assert answering(keeper.listen)


def test_keep_restarts_a_responder_that_died(
    tmp_path: Path, table: RouteTable, spawned: list[int]
) -> None:
    keeper = keeper_for(table.path, tmp_path)
    dead = keeper.keep()
    assert dead is not None
    os.kill(dead, signal.SIGKILL)
    pid = keeper.keep()
    assert pid is not None and pid != dead
    spawned.append(pid)
    with pytest.raises(ChildProcessError):  # the dead one was reaped, not left a zombie
        os.waitpid(dead, os.WNOHANG)
    assert sorted(addresses(ask(keeper.listen, HELLO))) == ["127.77.0.1", "127.77.0.2"]


def test_keep_reports_a_responder_that_cannot_start(tmp_path: Path, table: RouteTable) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:  # holds the port mute
        squatter.bind(("127.0.0.1", 0))
        keeper = keeper_for(table.path, tmp_path, f"127.0.0.1:{squatter.getsockname()[1]}")
        with pytest.raises(RouterError, match="Address already in use"):
            keeper.keep()
    assert keeper.pid is None


def test_started_responder_outlives_the_process_that_started_it(
    tmp_path: Path, table: RouteTable, spawned: list[int]
) -> None:
    listen = f"127.0.0.1:{free_udp_port()}"
    script = (
        "import time; from pathlib import Path\n"
        "from slipway.routing.keeper import RouteDnsKeeper\n"
        f"keeper = RouteDnsKeeper({listen!r}, Path({str(table.path)!r}),"
        f" Path({str(tmp_path / 'routedns.log')!r}))\n"
        "print(keeper.keep(), flush=True); time.sleep(60)\n"
    )
    agent = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert agent.stdout is not None
        pid = int(agent.stdout.readline())
        spawned.append(pid)
    finally:
        agent.kill()  # kill -9 of the "agent"
        agent.wait()
    time.sleep(0.2)
    os.kill(pid, 0)  # still there
    assert sorted(addresses(ask(listen, HELLO))) == ["127.77.0.1", "127.77.0.2"]
    # The next agent uses it rather than start another.
    assert keeper_for(table.path, tmp_path, listen).keep() is None


def test_a_table_path_that_is_long_or_not_ascii_is_recognised(
    tmp_path: Path, spawned: list[int]
) -> None:
    where = tmp_path / ("dätä-" + "x" * 200) / ("ü" * 60)
    table = RouteTable(where / "routes.json")
    table.write({})
    keeper = keeper_for(table.path, where)
    pid = keeper.keep()
    assert pid is not None
    spawned.append(pid)
    assert serving(keeper.listen) == table_id(table.path)
    assert keeper_for(table.path, where, keeper.listen).keep() is None
