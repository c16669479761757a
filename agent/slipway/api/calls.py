"""One App Runner call as the API makes it, for every door into the agent: the JSON
endpoint (``app.py``) and the web console (``api/console/``). Checked against the model,
then against the caller's policies, then carried out by its handler: the console adds no
rules of its own, it goes through these."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import InvalidRequest
from . import authz
from .handlers import HANDLERS, Rules
from .validate import validate_input

if TYPE_CHECKING:
    from ..agent import Agent


class Calls:
    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.rules = Rules(agent.services, agent.domains, agent.connections)

    def tags_of(self, arn: str) -> dict[str, str]:
        return self.agent.store.get_tags(arn)

    def app_runner(self, key_id: str, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        """The wire answer of ``operation`` for the key's principal (blocking: call it in
        a thread)."""
        handler = HANDLERS.get(operation)
        if handler is None:
            raise InvalidRequest(f"{operation} is not supported by slipway yet")
        validate_input(operation, params)
        settings = self.agent.settings
        self.agent.access.authorize(
            key_id,
            authz.operation_request(
                operation,
                params,
                region=settings.region,
                account=settings.account_id,
                tags_of=self.tags_of,
            ),
        )
        return handler(self.rules, params)

    def authorize_route(
        self,
        key_id: str,
        method: str,
        template: str,
        params: Mapping[str, Any],
        path_params: Mapping[str, str] | None = None,
    ) -> None:
        """What a signed ``/slipway/v1`` route checks before it runs, for a caller that
        reaches the same work another way (the console): ``AccessDenied`` unless the
        key's principal may."""
        settings = self.agent.settings
        query = {k: v for k, v in params.items() if isinstance(v, str)}
        self.agent.access.authorize(
            key_id,
            authz.route_request(
                authz.ROUTES[(method, template)],
                path_params or {},
                query,
                json.dumps(dict(params)).encode(),
                region=settings.region,
                account=settings.account_id,
                tags_of=self.tags_of,
            ),
        )
