"""An in-memory router for unit tests: it keeps the routes it was given."""

from __future__ import annotations

from collections.abc import Iterable

from .haproxytraffic import UpstreamServed
from .router import Route


class FakeRouter:
    def __init__(self) -> None:
        self.routes: list[Route] = []
        self.flights: dict[str, int] = {}  # requests in flight per upstream address
        self.answers: dict[str, UpstreamServed] = {}  # what each upstream answered

    def apply(self, routes: Iterable[Route]) -> bool:
        self.routes = list(routes)
        return True

    def keep_route_dns(self) -> None:
        pass

    def routed(self) -> dict[str, tuple[str, ...]]:
        return {r.host: r.upstreams for r in self.routes}

    def upstream_requests(self) -> dict[str, int]:
        return dict(self.flights)

    def served(self) -> dict[str, object]:
        return {}

    def upstream_served(self, since: float) -> dict[str, UpstreamServed]:
        return dict(self.answers)
