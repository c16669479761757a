"""A tiny DNS responder that tells Caddy where each service's instances are.

Why: switching a route with Caddy's ``POST /load`` restarts its HTTP server, which
closes idle keep-alive client connections, so a client request can be lost at every
deployment. Instead each service's route uses Caddy's ``dynamic_upstreams`` with
``"source": "a"``: it resolves ``<route host>.route.slipway.`` to the loopback IPs of
the service's instances (each instance has its own 127.77.x.y, same port), and a route
switch is just a new answer here; Caddy's config does not change.

Pieces:

- ``RouteTable``: the answers as a JSON file, ``{"hello.localhost.route.slipway.":
  ["127.77.0.1", ...]}``. The agent replaces it atomically; the responder re-reads it
  when it changes. The file is the only thing the two share.
- ``serve``: the responder, a blocking single-threaded UDP loop. It must be trivial and
  never hang, because Caddy's resolver waits on it: A gets the IPs (TTL 1), AAAA and
  other types of a known name get an empty NOERROR at once (Go's resolver asks A and
  AAAA together), unknown names get NXDOMAIN, malformed packets are dropped.
- ``serving`` (which table the responder at an address serves, from a TXT record) and
  ``answering``: probes. ``keeper.RouteDnsKeeper`` uses them to reuse a responder that
  serves its table (systemd's ``slipway-dns.service``, or one an earlier agent
  started) and to start one only when none answers.

Run by hand: ``python -m slipway.routing.routedns --listen 127.0.0.1:8753 --table routes.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import ipaddress
import json
import logging
import os
import socket
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

ZONE = "route.slipway."  # names are "<route host>.route.slipway." lower-case
TTL = 1  # seconds; Caddy's own refresh interval decides how often it asks
RACY_SECONDS = 2.0  # a table this fresh is re-read per query: mtime ticks are coarse
PROBE_NAME = f"answering.{ZONE}"
# TXT here identifies the table a responder serves (a digest of its path, which may be
# long or not ASCII), so an agent never uses another's.
SOURCE_NAME = f"table.{ZONE}"
PROBES = 3  # a lost datagram or a slow answer is not a dead responder

log = logging.getLogger("slipway.routing.routedns")


def route_name(host: str) -> str:
    """``"Hello.localhost"`` -> ``"hello.localhost.route.slipway."``."""
    return f"{host.strip().rstrip('.').lower()}.{ZONE}"


def _normal_name(name: str) -> str:
    return name.strip().lower().rstrip(".") + "."


def _split_listen(listen: str) -> tuple[str, int]:
    """``"127.0.0.1:8753"`` (or ``"[::1]:8753"``) -> (host, port)."""
    host, sep, port = listen.rpartition(":")
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
        number = int(port)
    except ValueError:
        number = -1
    if not sep or not 0 < number < 65536:
        raise ValueError(f"route DNS address {listen!r} is not an IP:PORT")
    return host, number


class RouteTable:
    """The answers, as a JSON file the agent replaces atomically and the responder
    re-reads when it changes. It is the agent's alone (0600) unless ``gid`` names the
    group a responder of another user is in (0640; ``filemodes.StateAccess``)."""

    def __init__(self, path: Path, gid: int | None = None) -> None:
        self.path = Path(path)
        self.gid = gid

    @staticmethod
    def encode(answers: Mapping[str, Sequence[str]]) -> bytes:
        """Canonical bytes: names normalised and sorted, IPs checked, their order kept."""
        table: dict[str, list[str]] = {}
        for name, ips in answers.items():
            if isinstance(ips, str):
                raise TypeError(f"answers for {name!r} must be a list of IPs, not a string")
            for ip in ips:
                ipaddress.IPv4Address(ip)  # ValueError on anything else
            table[_normal_name(name)] = list(dict.fromkeys(ips))
        return (json.dumps(table, sort_keys=True, indent=1) + "\n").encode()

    def write(self, answers: Mapping[str, Sequence[str]]) -> bool:
        """Replace the table; False (and nothing written) when it already says this."""
        data = self.encode(answers)
        try:
            if self.path.read_bytes() == data:
                return False
        except OSError:
            pass
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                if self.gid is not None:
                    os.fchown(out.fileno(), -1, self.gid)
                os.fchmod(out.fileno(), 0o600 if self.gid is None else 0o640)
                out.write(data)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return True

    def read(self) -> dict[str, list[str]]:
        """The table; ``{}`` when the file is missing or unreadable."""
        try:
            return _parse(self.path.read_bytes())
        except (OSError, ValueError):
            return {}


def _parse(data: bytes) -> dict[str, list[str]]:
    """Table bytes -> {name: [IPv4, ...]}; entries that are not that shape are skipped."""
    raw = json.loads(data)
    if not isinstance(raw, dict):
        raise ValueError("route table is not a JSON object")
    table: dict[str, list[str]] = {}
    for name, ips in raw.items():
        if not isinstance(ips, list):
            continue
        good = []
        for ip in ips:
            with contextlib.suppress(ValueError, TypeError):
                good.append(str(ipaddress.IPv4Address(ip)))
        table[_normal_name(name)] = good
    return table


class _Answers:
    """The responder's view of the table file, re-read when it changes.

    A change is a new (inode, size, mtime); since mtime ticks are coarse, a file
    younger than RACY_SECONDS is re-read on every lookup anyway (cheap: it is small).
    A missing file means no routes; an unparsable one keeps the last good table.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.key: tuple[int, int, int] | None = None
        self.table: dict[str, list[str]] = {}

    def current(self) -> dict[str, list[str]]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            if self.key != (0, 0, 0):
                log.warning("route table %s is missing: every name is unknown", self.path)
            self.key, self.table = (0, 0, 0), {}
            return self.table
        except OSError as exc:
            log.warning("cannot stat route table %s: %s", self.path, exc)
            return self.table
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        if key == self.key and time.time() - st.st_mtime > RACY_SECONDS:
            return self.table
        try:
            table = _parse(self.path.read_bytes())
        except (OSError, ValueError) as exc:
            if key != self.key:  # say so once per version of the file, not per query
                log.warning("route table %s unreadable, keeping the last one: %s", self.path, exc)
            self.key = key
            return self.table
        if table != self.table:
            log.info("route table: %d names", len(table))
        self.key, self.table = key, table
        return table


def respond(
    query: dns.message.Message, table: Mapping[str, list[str]], source: str = ""
) -> dns.message.Message:
    """The answer to one query, as a pure function of the table (read from ``source``)."""
    response = dns.message.make_response(query)
    response.flags |= dns.flags.AA
    if query.opcode() != dns.opcode.QUERY:
        response.set_rcode(dns.rcode.NOTIMP)
        return response
    if len(query.question) != 1:
        response.set_rcode(dns.rcode.FORMERR)
        return response
    question = query.question[0]
    name = question.name.to_text().lower()
    if name == SOURCE_NAME and question.rdtype == dns.rdatatype.TXT:
        text = dns.rdata.from_text("IN", "TXT", f'"{table_id(source)}"')
        response.answer.append(dns.rrset.from_rdata(question.name, TTL, text))
        return response
    ips = table.get(name)
    if ips is None:
        response.set_rcode(dns.rcode.NXDOMAIN)
    elif ips and question.rdtype == dns.rdatatype.A and question.rdclass == dns.rdataclass.IN:
        response.answer.append(dns.rrset.from_text_list(question.name, TTL, "IN", "A", ips))
    return response


def _wire(response: dns.message.Message, limit: int) -> bytes:
    """Wire form within ``limit`` bytes. We serve no TCP, so rather than set TC (which
    sends the client to TCP) a huge A set is cut down to the addresses that fit."""
    while True:
        try:
            return response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            if not response.answer:
                raise
            rrset = response.answer[0]
            kept = list(rrset)[: max(len(rrset) * 3 // 4, 1)] if len(rrset) > 1 else []
            response.answer = []
            if kept:
                response.answer.append(dns.rrset.from_rdata_list(rrset.name, rrset.ttl, kept))
            log.warning(
                "answer for %s too big for %d bytes: cut to %d", rrset.name, limit, len(kept)
            )


def serve(listen: str, table: Path) -> None:
    """Answer route queries on UDP ``listen`` ("127.0.0.1:PORT") until killed."""
    host, port = _split_listen(listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    answers = _Answers(Path(table))
    source = str(Path(table).resolve())
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.bind((host, port))
        log.info("answering %s names on %s from %s", ZONE, listen, table)
        while True:
            try:
                data, peer = sock.recvfrom(65535)
            except OSError as exc:  # e.g. an ICMP error reported late: keep going
                log.debug("recvfrom: %s", exc)
                continue
            try:
                query = dns.message.from_wire(data)
                if query.flags & dns.flags.QR:
                    continue  # a response, not a query: never answer those
                response = respond(query, answers.current(), source)
                limit = max(512, query.payload) if query.edns >= 0 else 512
                sock.sendto(_wire(response, limit), peer)
            except dns.exception.DNSException:
                continue  # malformed packet: drop it
            except Exception:  # noqa: BLE001 - one bad packet must not stop the routes
                log.exception("failed to answer a packet from %s", peer)


def answering(listen: str, timeout: float = 0.3) -> bool:
    """Whether a DNS responder answers at ``listen`` (an NXDOMAIN counts)."""
    host, port = _split_listen(listen)
    query = dns.message.make_query(PROBE_NAME, dns.rdatatype.A)
    try:
        dns.query.udp(query, host, port=port, timeout=timeout)
    except (dns.exception.DNSException, OSError):
        return False
    return True


def table_id(table: Path | str) -> str:
    """What a responder says of the table it serves: a digest of its resolved path."""
    return hashlib.sha256(str(Path(table).resolve()).encode()).hexdigest()[:32]


def serving(listen: str, timeout: float = 0.3) -> str | None:
    """The id of the table the responder at ``listen`` serves; "" for one that does not
    say, None when nothing answers ``PROBES`` times in a row."""
    host, port = _split_listen(listen)
    query = dns.message.make_query(SOURCE_NAME, dns.rdatatype.TXT)
    for _ in range(PROBES):
        try:
            response = dns.query.udp(query, host, port=port, timeout=timeout)
        except (dns.exception.DNSException, OSError):
            continue
        for rrset in response.answer:
            for rdata in rrset:
                return b"".join(rdata.strings).decode(errors="replace")
        return ""
    return None


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m slipway.routing.routedns", description=__doc__)
    parser.add_argument("--listen", required=True, help="UDP IP:PORT, e.g. 127.0.0.1:8753")
    parser.add_argument("--table", required=True, type=Path, help="the route table JSON file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        serve(args.listen, args.table)


if __name__ == "__main__":
    main()
