"""What one App Runner endpoint holds, read through its API: the account being left
(``SourceAccount``, with the user's own AWS credentials) or this host (``Client``).
Both speak the same operations, so ``read_account`` serves both.

AWS's errors are turned into slipway's here, once, with what the user should check:
the profile, the region, the endpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    ProfileNotFound,
)

from ..client import _snake
from ..errors import InvalidRequest, SlipwayError, UnrecognizedClient

Call = Callable[..., dict[str, Any]]  # call(operation, **params) -> answer

# Codes AWS answers when the credentials, not the request, are wrong.
REFUSED_CREDENTIALS = {
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "InvalidClientTokenId",
    "ExpiredTokenException",
    "MissingAuthenticationTokenException",
    "AccessDeniedException",
    "SignatureDoesNotMatch",
}


@dataclass(frozen=True)
class Revision:
    """One ACTIVE revision of an auto scaling or observability configuration."""

    name: str
    revision: int
    arn: str
    values: dict[str, Any]  # the Create call's members that make the revision what it is
    tags: dict[str, str] = field(default_factory=dict)
    is_default: bool = False


@dataclass(frozen=True)
class Domain:
    name: str
    enable_www: bool
    status: str


@dataclass(frozen=True)
class ServiceView:
    """A service as DescribeService shows it, with its tags and custom domains."""

    name: str
    arn: str
    status: str
    description: dict[str, Any]
    tags: dict[str, str]
    domains: list[Domain]
    dns_target: str


@dataclass(frozen=True)
class Connection:
    name: str
    arn: str
    provider: str
    status: str


@dataclass
class Account:
    services: list[ServiceView] = field(default_factory=list)
    auto_scaling: list[Revision] = field(default_factory=list)
    observability: list[Revision] = field(default_factory=list)
    connections: list[Connection] = field(default_factory=list)
    # This host only: secret names and the services each is granted to.
    secrets: dict[str, list[str]] = field(default_factory=dict)


class SourceAccount:
    """The App Runner account being moved, read with the user's own AWS credentials
    (boto3's usual resolution: ``--profile``, environment, ``~/.aws``). The endpoint, when
    given, serves every AWS API the import calls (App Runner, ECR, Secrets Manager, SSM),
    as LocalStack or a second slipway does."""

    def __init__(self, profile: str | None, region: str | None, endpoint: str | None) -> None:
        try:
            self.session = boto3.Session(profile_name=profile, region_name=region)
        except ProfileNotFound as exc:
            raise InvalidRequest(f"--profile {profile}: no such AWS profile ({exc})") from exc
        self.region = self.session.region_name
        if not self.region:
            raise InvalidRequest("no AWS region: pass --region or set one in the profile")
        if not endpoint and self.region not in self.session.get_available_regions("apprunner"):
            offered = ", ".join(self.session.get_available_regions("apprunner"))
            raise InvalidRequest(
                f"--region {self.region}: App Runner is not offered there; it is in {offered}"
            )
        self.profile = profile or "default"
        self.endpoint = endpoint
        self.apprunner = self.client("apprunner")

    def client(self, service: str) -> Any:
        return self.session.client(
            service,
            endpoint_url=self.endpoint,
            config=Config(retries={"max_attempts": 2}, connect_timeout=5, read_timeout=60),
        )

    def where(self) -> str:
        return f"App Runner in {self.region}" + (f" at {self.endpoint}" if self.endpoint else "")

    def call(self, operation: str, **params: Any) -> dict[str, Any]:
        """One App Runner call; errors name the profile, the region and the endpoint."""
        method = getattr(self.apprunner, _snake(operation))
        try:
            answer = method(**params)
        except NoCredentialsError as exc:
            raise UnrecognizedClient(
                f"no AWS credentials for profile {self.profile}: set them in ~/.aws or the"
                " environment"
            ) from exc
        except EndpointConnectionError as exc:
            raise SlipwayError(f"{self.where()} does not answer: {exc}") from exc
        except ClientError as exc:
            err = exc.response.get("Error", {})
            code, message = err.get("Code", "Unknown"), err.get("Message", str(exc))
            if code in REFUSED_CREDENTIALS:
                raise UnrecognizedClient(
                    f"{self.where()} refused the credentials of profile {self.profile}:"
                    f" {code}: {message}"
                ) from exc
            raise SlipwayError(f"{self.where()}: {operation}: {code}: {message}") from exc
        except BotoCoreError as exc:
            raise SlipwayError(f"{self.where()}: {operation}: {exc}") from exc
        answer.pop("ResponseMetadata", None)
        return answer

    def secret_value(self, reference: str) -> str:
        """The value a ``RuntimeEnvironmentSecrets`` reference names, read from Secrets
        Manager or SSM with the account's credentials; SlipwayError says why not."""
        try:
            if reference.startswith("arn:") and ":secretsmanager:" in reference:
                arn = ":".join(reference.split(":")[:7])  # JSON key and stage are read here
                answer = self.client("secretsmanager").get_secret_value(SecretId=arn)
                return answer["SecretString"]
            answer = self.client("ssm").get_parameter(Name=reference, WithDecryption=True)
            return answer["Parameter"]["Value"]
        except (ClientError, BotoCoreError, KeyError) as exc:
            raise SlipwayError(f"cannot read {reference} from the account: {exc}") from exc


def pages(call: Call, operation: str, member: str, **params: Any) -> Iterator[dict[str, Any]]:
    """Every item of a listing, following NextToken."""
    token = None
    while True:
        page = call(operation, **params, **({"NextToken": token} if token else {}))
        yield from page.get(member) or []
        token = page.get("NextToken")
        if not token:
            return


def _tags(call: Call, arn: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in call("ListTagsForResource", ResourceArn=arn)["Tags"]}


def read_service(call: Call, arn: str) -> ServiceView:
    service = call("DescribeService", ServiceArn=arn)["Service"]
    domains: list[Domain] = []
    target = ""
    token = None
    while True:
        page = call(
            "DescribeCustomDomains", ServiceArn=arn, **({"NextToken": token} if token else {})
        )
        target = page.get("DNSTarget", target)
        domains += [
            Domain(d["DomainName"], bool(d.get("EnableWWWSubdomain")), d.get("Status", ""))
            for d in page.get("CustomDomains") or []
        ]
        token = page.get("NextToken")
        if not token:
            break
    return ServiceView(
        name=service["ServiceName"],
        arn=arn,
        status=service["Status"],
        description=service,
        tags=_tags(call, arn),
        domains=domains,
        dns_target=target,
    )


def read_account(call: Call, *, tags: bool = True) -> Account:
    """Everything the import carries, as one endpoint shows it now. Deleted services
    and INACTIVE revisions are left out: there is nothing of them to recreate."""
    account = Account()
    for summary in pages(call, "ListServices", "ServiceSummaryList"):
        if summary["Status"] in ("DELETED", "DELETE_FAILED"):
            continue
        account.services.append(read_service(call, summary["ServiceArn"]))
    for s in pages(call, "ListAutoScalingConfigurations", "AutoScalingConfigurationSummaryList"):
        row = call(
            "DescribeAutoScalingConfiguration",
            AutoScalingConfigurationArn=s["AutoScalingConfigurationArn"],
        )["AutoScalingConfiguration"]
        if row.get("Status", "ACTIVE") != "ACTIVE":
            continue
        account.auto_scaling.append(
            Revision(
                name=row["AutoScalingConfigurationName"],
                revision=row["AutoScalingConfigurationRevision"],
                arn=row["AutoScalingConfigurationArn"],
                values={k: row[k] for k in ("MaxConcurrency", "MinSize", "MaxSize") if k in row},
                tags=_tags(call, row["AutoScalingConfigurationArn"]) if tags else {},
                is_default=bool(row.get("IsDefault")),
            )
        )
    for s in pages(
        call,
        "ListObservabilityConfigurations",
        "ObservabilityConfigurationSummaryList",
        LatestOnly=False,
    ):
        row = call(
            "DescribeObservabilityConfiguration",
            ObservabilityConfigurationArn=s["ObservabilityConfigurationArn"],
        )["ObservabilityConfiguration"]
        if row.get("Status", "ACTIVE") != "ACTIVE":
            continue
        trace = row.get("TraceConfiguration")
        account.observability.append(
            Revision(
                name=row["ObservabilityConfigurationName"],
                revision=row["ObservabilityConfigurationRevision"],
                arn=row["ObservabilityConfigurationArn"],
                values={"TraceConfiguration": trace} if trace else {},
                tags=_tags(call, row["ObservabilityConfigurationArn"]) if tags else {},
            )
        )
    account.connections = [
        Connection(c["ConnectionName"], c["ConnectionArn"], c["ProviderType"], c["Status"])
        for c in pages(call, "ListConnections", "ConnectionSummaryList")
    ]
    for kind in (account.auto_scaling, account.observability):
        kind.sort(key=lambda r: (r.name, r.revision))
    return account
