"""Credentials for real ECR registries: ECR GetAuthorizationToken with the host's own
AWS credentials (the usual chain: env, ~/.aws, instance profile), cached until
shortly before the 12-hour token expires."""

from __future__ import annotations

import base64
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from ..errors import RegistryAuthFailed

ECR_HOST = re.compile(r"(\d{12})\.dkr\.ecr(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?")


class EcrTokens:
    def __init__(
        self,
        client_for: Callable[[str], Any] | None = None,
        *,
        clock: Callable[[], float] = time.time,
        margin: float = 600.0,
    ) -> None:
        self.client_for = client_for or (lambda region: boto3.client("ecr", region_name=region))
        self.clock = clock
        self.margin = margin
        self._cache: dict[str, tuple[tuple[str, str], float]] = {}
        self._lock = threading.Lock()

    def credentials(self, host: str) -> tuple[str, str] | None:
        """(user, password) for an ECR host; None for any other registry."""
        match = ECR_HOST.fullmatch(host)
        if not match:
            return None
        with self._lock:
            cached = self._cache.get(host)
            if cached and cached[1] - self.margin > self.clock():
                return cached[0]
            account, region = match.groups()
            try:
                answer = self.client_for(region).get_authorization_token(registryIds=[account])
                data = answer["authorizationData"][0]
            except (ClientError, BotoCoreError, KeyError, IndexError) as exc:
                raise RegistryAuthFailed(
                    f"ECR GetAuthorizationToken for {host} failed: {exc}"
                ) from exc
            user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
            expires = data["expiresAt"]
            expires_at = expires.timestamp() if hasattr(expires, "timestamp") else float(expires)
            self._cache[host] = ((user, password), expires_at)
            return user, password
