"""A tiny authoritative DNS server on loopback UDP for tests: the zone is a dict a test
changes while it runs, the way a user edits records at their DNS provider.

``records`` maps a name (or ``*.parent``, matching one label more) to addresses; A or
AAAA answers are picked by address family. Unknown names get NXDOMAIN.
"""

from __future__ import annotations

import ipaddress
import socket
import threading

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset


class DnsServer:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.records: dict[str, list[str]] = {}
        self.queries: list[str] = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((host, 0))
        self._sock.settimeout(0.2)
        self.address = f"{host}:{self._sock.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="test-dns", daemon=True)

    def start(self) -> DnsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()

    def point(self, name: str, *addresses: str) -> None:
        """Set (or with no addresses, remove) the records of ``name``."""
        if addresses:
            self.records[name.lower()] = list(addresses)
        else:
            self.records.pop(name.lower(), None)

    def _lookup(self, name: str) -> list[str] | None:
        if name in self.records:
            return self.records[name]
        _, _, parent = name.partition(".")
        return self.records.get(f"*.{parent}")

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self._sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                query = dns.message.from_wire(data)
            except dns.exception.DNSException:
                continue
            self._sock.sendto(self._answer(query).to_wire(), peer)

    def _answer(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        (question,) = query.question
        name = question.name.to_text().rstrip(".").lower()
        self.queries.append(name)
        addresses = self._lookup(name)
        if addresses is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
            return response
        version = 4 if question.rdtype == dns.rdatatype.A else 6
        wanted = [a for a in addresses if ipaddress.ip_address(a).version == version]
        if question.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA) and wanted:
            response.answer.append(
                dns.rrset.from_text_list(
                    question.name, 60, dns.rdataclass.IN, question.rdtype, wanted
                )
            )
        return response
