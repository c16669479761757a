"""ECR hosts get their registry credentials from GetAuthorizationToken, cached."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import Stubber

from slipway.errors import RegistryAuthFailed
from slipway.sources.ecr import EcrTokens

HOST = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"


def stubbed(*answers):
    client = boto3.client(
        "ecr", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="y"
    )
    stubber = Stubber(client)
    for answer in answers:
        if isinstance(answer, str):
            stubber.add_client_error("get_authorization_token", service_error_code=answer)
        else:
            stubber.add_response(
                "get_authorization_token", answer, {"registryIds": ["123456789012"]}
            )
    stubber.activate()
    return client, stubber


def token(password: str, expires: float) -> dict:
    return {
        "authorizationData": [
            {
                "authorizationToken": base64.b64encode(f"AWS:{password}".encode()).decode(),
                "expiresAt": datetime.fromtimestamp(expires, UTC),
                "proxyEndpoint": f"https://{HOST}",
            }
        ]
    }


def test_other_hosts_get_nothing():
    tokens = EcrTokens(lambda region: pytest.fail("no call for non-ECR hosts"))
    assert tokens.credentials("127.0.0.1:5000") is None
    assert tokens.credentials("public.ecr.aws") is None


def test_token_cached_until_shortly_before_expiry():
    now = [1_000_000.0]
    client, stubber = stubbed(token("one", now[0] + 3600), token("two", now[0] + 7200))
    regions = []

    def client_for(region):
        regions.append(region)
        return client

    tokens = EcrTokens(client_for, clock=lambda: now[0], margin=600)
    assert tokens.credentials(HOST) == ("AWS", "one")
    now[0] += 2900
    assert tokens.credentials(HOST) == ("AWS", "one")
    now[0] += 200  # within the margin of expiry: a fresh token
    assert tokens.credentials(HOST) == ("AWS", "two")
    assert regions == ["eu-west-1", "eu-west-1"]
    stubber.assert_no_pending_responses()


def test_refused_token_is_an_auth_failure():
    client, _ = stubbed("AccessDeniedException")
    with pytest.raises(RegistryAuthFailed, match=HOST):
        EcrTokens(lambda region: client).credentials(HOST)
