"""Domain records and their App Runner wire forms.

PascalCase lives here only: ``from_api`` turns validated request members into
records, ``to_api`` turns records into response members. The store keeps the
records as plain dicts (``asdict``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidRequest
from .secretrefs import parse_reference
from .vpc.network import NetworkConfig

# App Runner's defaults, as DescribeService reports them when a member was omitted.
DEFAULT_CPU = "1024"
DEFAULT_MEMORY = "2048"
DEFAULT_PORT = "8080"

_CPU_UNITS = {
    "0.25 vCPU": "256",
    "0.5 vCPU": "512",
    "1 vCPU": "1024",
    "2 vCPU": "2048",
    "4 vCPU": "4096",
}
_MEMORY_MB = {
    f"{gb} GB": str(int(float(gb) * 1024))
    for gb in ("0.5", "1", "2", "3", "4", "6", "8", "10", "12")
}
# App Runner's valid CPU/memory pairs (the guide's "configuración de instancia" table).
_VALID_MEMORY_FOR_CPU = {
    "256": {"512", "1024"},
    "512": {"1024"},
    "1024": {"2048", "3072", "4096"},
    "2048": {"4096", "6144"},
    "4096": {"8192", "10240", "12288"},
}


def check_references(where: str, secrets: dict[str, str]) -> None:
    """Each value a secret reference slipway resolves (``secretrefs``): a malformed one
    is refused at the API edge, before anything is stored. Whether the secret exists and
    is granted is the deployment's question: grants change between the two."""
    for name, reference in secrets.items():
        try:
            parse_reference(reference)
        except InvalidRequest as exc:
            raise InvalidRequest(f"{where}: {name}: {exc.message}") from exc


@dataclass
class ImageSource:
    identifier: str
    repository_type: str
    port: str = DEFAULT_PORT
    env: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    start_command: str | None = None

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> ImageSource:
        conf = data.get("ImageConfiguration") or {}
        port = conf.get("Port") or DEFAULT_PORT
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            raise InvalidRequest(
                f"SourceConfiguration.ImageRepository.ImageConfiguration.Port: "
                f"{port!r} is not a port number between 1 and 65535"
            )
        env = dict(conf.get("RuntimeEnvironmentVariables") or {})
        secrets = dict(conf.get("RuntimeEnvironmentSecrets") or {})
        where = "SourceConfiguration.ImageRepository.ImageConfiguration.RuntimeEnvironmentSecrets"
        check_references(where, secrets)
        both = sorted(secrets.keys() & env.keys())
        if both:
            raise InvalidRequest(f"{where}: {both[0]!r} is also in RuntimeEnvironmentVariables")
        return cls(
            identifier=data["ImageIdentifier"],
            repository_type=data["ImageRepositoryType"],
            port=port,
            env=env,
            secrets=secrets,
            start_command=conf.get("StartCommand"),
        )

    def to_api(self) -> dict[str, Any]:
        conf: dict[str, Any] = {"Port": self.port}
        if self.env:
            conf["RuntimeEnvironmentVariables"] = dict(self.env)
        if self.secrets:
            conf["RuntimeEnvironmentSecrets"] = dict(self.secrets)
        if self.start_command:
            conf["StartCommand"] = self.start_command
        return {
            "ImageIdentifier": self.identifier,
            "ImageConfiguration": conf,
            "ImageRepositoryType": self.repository_type,
        }


@dataclass
class CodeSource:
    """A git branch to build. ``values`` keeps the API's CodeConfigurationValues as sent
    (ConfigurationSource API); with REPOSITORY the branch's apprunner.yaml decides."""

    repository_url: str
    branch: str
    source_directory: str | None = None
    configuration_source: str = "REPOSITORY"
    values: dict[str, Any] | None = None

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> CodeSource:
        field_ = "SourceConfiguration.CodeRepository"
        conf = data.get("CodeConfiguration") or {"ConfigurationSource": "REPOSITORY"}
        values = conf.get("CodeConfigurationValues")
        if conf["ConfigurationSource"] == "API" and not values:
            raise InvalidRequest(
                f"{field_}.CodeConfiguration.CodeConfigurationValues: required when"
                " ConfigurationSource is API"
            )
        if values:
            check_references(
                f"{field_}.CodeConfiguration.CodeConfigurationValues.RuntimeEnvironmentSecrets",
                values.get("RuntimeEnvironmentSecrets") or {},
            )
        directory = data.get("SourceDirectory")
        if directory is not None and (".." in directory.split("/") or "\\" in directory):
            raise InvalidRequest(
                f"{field_}.SourceDirectory: {directory!r} must be a path inside the repository"
            )
        return cls(
            repository_url=data["RepositoryUrl"],
            branch=data["SourceCodeVersion"]["Value"],
            source_directory=directory,
            configuration_source=conf["ConfigurationSource"],
            values=values if conf["ConfigurationSource"] == "API" else None,
        )

    def to_api(self) -> dict[str, Any]:
        conf: dict[str, Any] = {"ConfigurationSource": self.configuration_source}
        if self.values:
            conf["CodeConfigurationValues"] = self.values
        out: dict[str, Any] = {
            "RepositoryUrl": self.repository_url,
            "SourceCodeVersion": {"Type": "BRANCH", "Value": self.branch},
            "CodeConfiguration": conf,
        }
        if self.source_directory:
            out["SourceDirectory"] = self.source_directory
        return out


@dataclass
class SourceConfig:
    image: ImageSource | None = None
    code: CodeSource | None = None
    auto_deployments: bool = True
    access_role_arn: str | None = None
    connection_arn: str | None = None

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> SourceConfig:
        if bool(data.get("CodeRepository")) == bool(data.get("ImageRepository")):
            raise InvalidRequest(
                "SourceConfiguration: give exactly one of ImageRepository and CodeRepository"
            )
        auth = data.get("AuthenticationConfiguration") or {}
        if data.get("ImageRepository") and auth.get("ConnectionArn"):
            raise InvalidRequest(
                "SourceConfiguration.AuthenticationConfiguration.ConnectionArn: connections"
                " apply to code repositories only"
            )
        return cls(
            image=ImageSource.from_api(data["ImageRepository"])
            if data.get("ImageRepository")
            else None,
            code=CodeSource.from_api(data["CodeRepository"])
            if data.get("CodeRepository")
            else None,
            auto_deployments=data.get("AutoDeploymentsEnabled", True),
            access_role_arn=auth.get("AccessRoleArn"),
            connection_arn=auth.get("ConnectionArn"),
        )

    def to_api(self) -> dict[str, Any]:
        out: dict[str, Any] = {"AutoDeploymentsEnabled": self.auto_deployments}
        if self.image:
            out["ImageRepository"] = self.image.to_api()
        if self.code:
            out["CodeRepository"] = self.code.to_api()
        auth = {
            k: v
            for k, v in (
                ("AccessRoleArn", self.access_role_arn),
                ("ConnectionArn", self.connection_arn),
            )
            if v
        }
        if auth:
            out["AuthenticationConfiguration"] = auth
        return out


@dataclass
class InstanceConfig:
    cpu: str = DEFAULT_CPU
    memory: str = DEFAULT_MEMORY

    @classmethod
    def from_api(cls, data: dict[str, Any] | None) -> InstanceConfig:
        data = data or {}
        if data.get("InstanceRoleArn"):
            raise InvalidRequest(
                "InstanceConfiguration.InstanceRoleArn: IAM instance roles do not exist on a"
                " slipway host; pass credentials as environment variables"
            )
        cpu = _CPU_UNITS.get(data.get("Cpu", ""), data.get("Cpu", DEFAULT_CPU))
        memory = _MEMORY_MB.get(data.get("Memory", ""), data.get("Memory", DEFAULT_MEMORY))
        if memory not in _VALID_MEMORY_FOR_CPU.get(cpu, set()):
            allowed = ", ".join(sorted(_VALID_MEMORY_FOR_CPU[cpu], key=int))
            raise InvalidRequest(
                f"InstanceConfiguration: Memory {memory} is not valid with Cpu {cpu};"
                f" valid memory for that CPU: {allowed}"
            )
        return cls(cpu=cpu, memory=memory)

    def to_api(self) -> dict[str, Any]:
        return {"Cpu": self.cpu, "Memory": self.memory}


@dataclass
class HealthCheck:
    protocol: str = "TCP"
    path: str = "/"
    interval: int = 5
    timeout: int = 2
    healthy_threshold: int = 1
    unhealthy_threshold: int = 5

    @classmethod
    def from_api(cls, data: dict[str, Any] | None) -> HealthCheck:
        data = data or {}
        d = cls()
        return cls(
            protocol=data.get("Protocol", d.protocol),
            path=data.get("Path", d.path),
            interval=data.get("Interval", d.interval),
            timeout=data.get("Timeout", d.timeout),
            healthy_threshold=data.get("HealthyThreshold", d.healthy_threshold),
            unhealthy_threshold=data.get("UnhealthyThreshold", d.unhealthy_threshold),
        )

    def to_api(self) -> dict[str, Any]:
        return {
            "Protocol": self.protocol,
            "Path": self.path,
            "Interval": self.interval,
            "Timeout": self.timeout,
            "HealthyThreshold": self.healthy_threshold,
            "UnhealthyThreshold": self.unhealthy_threshold,
        }


def check_aws_only(params: dict[str, Any]) -> None:
    """Refuse members that would change behaviour and that have no host equivalent."""
    if params.get("EncryptionConfiguration"):
        raise InvalidRequest(
            "EncryptionConfiguration: customer-managed KMS keys are not supported by slipway;"
            " images and data stay on this host"
        )


def observability_arn(data: dict[str, Any] | None) -> str | None:
    """The observability configuration a service asks for (``ObservabilityConfiguration``),
    as given: its revision is resolved by the rules (``observability.py``)."""
    data = data or {}
    arn = data.get("ObservabilityConfigurationArn")
    if not data.get("ObservabilityEnabled"):
        return None
    if not arn:
        raise InvalidRequest(
            "ObservabilityConfiguration.ObservabilityConfigurationArn is required when"
            " ObservabilityEnabled is true"
        )
    return arn


@dataclass
class ServiceSpec:
    """What a service should run: everything UpdateService may change."""

    source: SourceConfig
    instance: InstanceConfig = field(default_factory=InstanceConfig)
    health: HealthCheck = field(default_factory=HealthCheck)
    auto_scaling_arn: str | None = None
    # The observability configuration's revision in use, and whether it traces.
    observability_arn: str | None = None
    tracing: bool = False
    network: NetworkConfig = field(default_factory=NetworkConfig)
    worker: str = ""  # "" for a web service, else its worker mode (``workers.py``)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ServiceSpec:
        src = data["source"]
        return cls(
            source=SourceConfig(
                image=ImageSource(**src["image"]) if src.get("image") else None,
                code=CodeSource(**src["code"]) if src.get("code") else None,
                auto_deployments=src["auto_deployments"],
                access_role_arn=src.get("access_role_arn"),
                connection_arn=src.get("connection_arn"),
            ),
            instance=InstanceConfig(**data["instance"]),
            health=HealthCheck(**data["health"]),
            auto_scaling_arn=data.get("auto_scaling_arn"),
            observability_arn=data.get("observability_arn"),
            tracing=data.get("tracing", False),
            network=NetworkConfig.from_dict(data.get("network")),
            worker=data.get("worker", ""),
        )

    def observability_api(self) -> dict[str, Any]:
        """The service's ``ObservabilityConfiguration`` member."""
        if not self.observability_arn:
            return {"ObservabilityEnabled": False}
        arn = self.observability_arn
        return {"ObservabilityEnabled": True, "ObservabilityConfigurationArn": arn}

    def updated(self, params: dict[str, Any]) -> ServiceSpec:
        """The spec UpdateService asks for: members it names replace ours, the rest stay."""
        check_aws_only(params)
        new = ServiceSpec.from_dict(self.to_dict())
        if "SourceConfiguration" in params:
            new.source = SourceConfig.from_api(params["SourceConfiguration"])
        if "InstanceConfiguration" in params:
            new.instance = InstanceConfig.from_api(params["InstanceConfiguration"])
        if "HealthCheckConfiguration" in params:
            new.health = HealthCheck.from_api(params["HealthCheckConfiguration"])
        if "AutoScalingConfigurationArn" in params:
            new.auto_scaling_arn = params["AutoScalingConfigurationArn"]
        if "ObservabilityConfiguration" in params:
            new.observability_arn = observability_arn(params["ObservabilityConfiguration"])
        if "NetworkConfiguration" in params:
            new.network = NetworkConfig.from_api(params["NetworkConfiguration"], new.network)
        return new

    @classmethod
    def from_create(cls, params: dict[str, Any]) -> ServiceSpec:
        check_aws_only(params)
        return cls(
            source=SourceConfig.from_api(params["SourceConfiguration"]),
            instance=InstanceConfig.from_api(params.get("InstanceConfiguration")),
            health=HealthCheck.from_api(params.get("HealthCheckConfiguration")),
            auto_scaling_arn=params.get("AutoScalingConfigurationArn"),
            observability_arn=observability_arn(params.get("ObservabilityConfiguration")),
            network=NetworkConfig.from_api(params.get("NetworkConfiguration")),
        )
