"""The router's spans of traced services, exported: Caddy's access log read from a
position of its own (``accesslog.py``), the lines of traced hosts made spans
(``tracing.router_span``) and posted to the collector as OTLP/HTTP JSON.

Apart from ``tracing.py`` because this is the I/O (a file followed, HTTP to the
collector, a job on the scheduler) around those pure rules. Apart from ``metrics.py``'s
reading because the two keep separate positions: the figures count every line, while
most lines concern no traced service and are skipped here without being parsed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

from ..errors import SlipwayError
from ..jobs import Jobs
from .accesslog import AccessLogTail
from .metrics import normalize_host
from .tracing import TraceSettings, export_request, router_span

TRACES_JOB = "traces"
EXPORT_TIMEOUT = 10.0  # seconds for one export request


class TraceExportError(SlipwayError):
    """The collector refused spans or could not be reached; those spans are lost."""


class RouterSpans:
    """One job: every ``settings.interval`` s, the spans of the requests to traced hosts
    since the last pass, to ``settings.endpoint``. ``traced`` gives each traced host
    (lower case, no port) its service's resource attributes (``service.name``...)."""

    def __init__(
        self,
        access_log: Path | None,
        settings: TraceSettings,
        traced: Callable[[], Mapping[str, Mapping[str, str]]],
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        settings.check()
        self.settings = settings
        self.traced = traced
        self._tail = None if access_log is None else AccessLogTail(access_log, from_start=False)
        self._http = httpx.Client(timeout=EXPORT_TIMEOUT, transport=transport)
        self.exported = 0

    def schedule(self, jobs: Jobs) -> None:
        jobs.every(TRACES_JOB, self.settings.interval, self.export_once)

    def export_once(self) -> int:
        """Export the spans of the lines written since the last pass; returns how many.
        Lines read when no service is traced are passed over."""
        if self._tail is None:
            return 0
        hosts = {host.lower(): dict(resource) for host, resource in self.traced().items()}
        # A line of a traced host (any case, with or without a port), found without
        # parsing the JSON of every line: most are other hosts'.
        names = b"|".join(re.escape(host.encode()) for host in sorted(hosts))
        wanted = re.compile(rb'"host":"(?:' + names + rb')[:"]', re.IGNORECASE)
        spans: dict[str, tuple[dict, list[dict]]] = {}
        for batch in self._tail.batches():
            if not hosts:
                continue
            for line in batch.splitlines():
                if wanted.search(line):
                    self._add(line, hosts, spans)
        total = sum(len(found) for _, found in spans.values())
        if total:
            self._post(spans)
        return total

    def _add(
        self,
        line: bytes,
        hosts: Mapping[str, Mapping[str, str]],
        spans: dict[str, tuple[dict, list[dict]]],
    ) -> None:
        try:
            entry: Any = json.loads(line)
            host = normalize_host(str(entry["request"]["host"]))
        except (ValueError, KeyError, TypeError):
            return
        resource = hosts.get(host)
        if resource is None:
            return  # another host whose name starts like a traced one
        span = router_span(entry, resource["service.name"])
        if span is not None:
            name = resource["service.name"]
            spans.setdefault(name, (dict(resource), []))[1].append(span)

    def _post(self, spans: dict[str, tuple[dict, list[dict]]]) -> None:
        """Send in requests of at most ``batch_spans`` spans; the first failure ends the
        pass (the job reports it on /healthz) and the rest of its spans are dropped."""
        size = self.settings.batch_spans
        chunk: dict[str, tuple[dict, list[dict]]] = {}
        count = 0
        flat = [(name, res, span) for name, (res, found) in spans.items() for span in found]
        for index, (name, resource, span) in enumerate(flat, 1):
            chunk.setdefault(name, (resource, []))[1].append(span)
            count += 1
            if count == size or index == len(flat):
                self._send(chunk, count)
                chunk, count = {}, 0

    def _send(self, chunk: dict[str, tuple[dict, list[dict]]], count: int) -> None:
        url = self.settings.traces_url
        try:
            response = self._http.post(
                url,
                content=json.dumps(export_request(chunk)),
                headers={"Content-Type": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise TraceExportError(f"{count} spans not exported to {url}: {exc}") from exc
        if response.status_code >= 300:
            raise TraceExportError(
                f"{count} spans not exported: {url} answered {response.status_code}"
                f" {response.text[:200]!r}"
            )
        self.exported += count
