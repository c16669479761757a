"""A client of a running agent, as boto3 users hold one: App Runner operations through
boto3, slipway's own endpoints signed with botocore's SigV4Auth."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import boto3
import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from . import keys
from .config import Settings
from .errors import ResourceNotFound, SlipwayError


class ApiError(SlipwayError):
    """An error the agent answered with; ``code`` is its App Runner error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Unreachable(SlipwayError):
    """No answer from the agent (it is down or restarting): a follower may try again."""


class Client:
    def __init__(self, endpoint: str, key_id: str, secret: str, region: str = "us-east-1") -> None:
        self.endpoint = endpoint.rstrip("/")
        self.region = region
        self._credentials = Credentials(key_id, secret)
        self.apprunner = boto3.client(
            "apprunner",
            endpoint_url=self.endpoint,
            region_name=region,
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            config=Config(retries={"max_attempts": 2}, connect_timeout=5, read_timeout=60),
        )

    @classmethod
    def from_settings(cls, settings: Settings, credentials_file: Path | None = None) -> Client:
        endpoint = os.environ.get("SLIPWAY_ENDPOINT", settings.endpoint)
        for path in (credentials_file, user_credentials_file(), settings.credentials_file):
            found = keys.read_credentials(path) if path else None
            if found:
                key_id, secret, region = found
                return cls(endpoint, key_id, secret, region or settings.region)
        raise SlipwayError(
            f"no slipway credentials found in {user_credentials_file()} or"
            f" {settings.credentials_file}; start the agent once, or run"
            " `slipway keys create` with a key"
        )

    def call(self, operation: str, **params: Any) -> dict[str, Any]:
        """Call an App Runner operation by its wire name, turning errors into ApiError."""
        from botocore.exceptions import ClientError, EndpointConnectionError, HTTPClientError

        method = getattr(self.apprunner, _snake(operation))
        try:
            result = method(**params)
        except ClientError as exc:
            err = exc.response.get("Error", {})
            raise ApiError(err.get("Code", "Unknown"), err.get("Message", str(exc))) from exc
        except (EndpointConnectionError, HTTPClientError) as exc:
            raise Unreachable(f"cannot reach slipway at {self.endpoint}: {exc}") from exc
        result.pop("ResponseMetadata", None)
        return result

    def signed(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Call one of slipway's own endpoints, signed as boto3 would sign it."""
        data = json.dumps(body).encode() if body is not None else b""
        url = f"{self.endpoint}{path}"
        if params:
            url += "?" + urlencode(params, quote_via=quote)
        request = AWSRequest(
            method=method, url=url, data=data, headers={"Content-Type": "application/json"}
        )
        SigV4Auth(self._credentials, "apprunner", self.region).add_auth(request)
        try:
            # A traffic change answers once its instances are healthy (health_deadline).
            response = httpx.request(
                method, url, content=data, headers=dict(request.headers.items()), timeout=150
            )
        except httpx.HTTPError as exc:
            raise Unreachable(f"cannot reach slipway at {self.endpoint}: {exc}") from exc
        payload = response.json() if response.content else {}
        if response.status_code >= 400:
            raise ApiError(payload.get("__type", "Unknown"), payload.get("Message", ""))
        return payload

    def services(self) -> Iterator[dict[str, Any]]:
        token = None
        while True:
            page = self.call("ListServices", **({"NextToken": token} if token else {}))
            yield from page["ServiceSummaryList"]
            token = page.get("NextToken")
            if not token:
                return

    def service_arn(self, name: str) -> str:
        for summary in self.services():
            if summary["ServiceName"] == name:
                return summary["ServiceArn"]
        raise ResourceNotFound(f"no service named {name}")


def user_credentials_file() -> Path:
    env = os.environ.get("SLIPWAY_CREDENTIALS_FILE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(xdg) / "slipway" / "credentials"


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")
