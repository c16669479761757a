"""An in-memory router for unit tests: it keeps the routes it was given."""

from __future__ import annotations

from collections.abc import Iterable

from .router import Route


class FakeRouter:
    def __init__(self) -> None:
        self.routes: list[Route] = []
        self.flights: dict[str, int] = {}  # requests in flight per upstream address

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
