"""Console forms as App Runner parameters: the fields a person fills in, turned into the
request the API takes, with no check of their own (the API's validation and rules judge
them, and their messages come back next to the field through ``FIELDS``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Member paths of the API's messages -> the form field they belong next to.
FIELDS = {
    "ServiceName": "name",
    "SourceConfiguration.ImageRepository.ImageIdentifier": "image",
    "SourceConfiguration.ImageRepository.ImageRepositoryType": "registry_type",
    "SourceConfiguration.ImageRepository.ImageConfiguration.Port": "port",
    "SourceConfiguration.ImageRepository.ImageConfiguration.RuntimeEnvironmentVariables": "env",
    "SourceConfiguration.ImageRepository.ImageConfiguration.StartCommand": "start_command",
    "SourceConfiguration.ImageRepository": "image",
    "SourceConfiguration.CodeRepository.RepositoryUrl": "repository",
    "SourceConfiguration.CodeRepository.SourceCodeVersion": "branch",
    "SourceConfiguration.CodeRepository.SourceDirectory": "source_directory",
    "SourceConfiguration.CodeRepository.CodeConfiguration": "runtime",
    "SourceConfiguration.AuthenticationConfiguration": "connection",
    "SourceConfiguration": "source",
    "InstanceConfiguration.Cpu": "cpu",
    "InstanceConfiguration.Memory": "memory",
    "HealthCheckConfiguration.Path": "health_path",
    "HealthCheckConfiguration": "health_protocol",
    "AutoScalingConfigurationArn": "auto_scaling",
    "Tags": "tags",
    "DomainName": "domain",
}


class FormError(ValueError):
    """A field that cannot even be put into a request (a line that is not KEY=VALUE)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def pairs(text: str, field: str) -> dict[str, str]:
    """``KEY=VALUE`` lines (blank lines skipped) as a dict, in order."""
    out: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise FormError(field, f"line {number}: expected KEY=VALUE, got {line.strip()!r}")
        out[key.strip()] = value
    return out


def _set(target: dict[str, Any], key: str, value: Any) -> None:
    if value not in (None, "", {}):
        target[key] = value


def source(f: Mapping[str, str]) -> dict[str, Any]:
    """``SourceConfiguration`` from the create and edit forms."""
    env = pairs(f.get("env", ""), "env")
    out: dict[str, Any] = {"AutoDeploymentsEnabled": f.get("auto_deploy") == "on"}
    if f.get("source_kind", "image") == "repository":
        values: dict[str, Any] = {}
        _set(values, "Runtime", f.get("runtime"))
        _set(values, "BuildCommand", f.get("build_command"))
        _set(values, "StartCommand", f.get("start_command"))
        _set(values, "Port", f.get("port"))
        _set(values, "RuntimeEnvironmentVariables", env)
        config: dict[str, Any] = {
            "ConfigurationSource": "API" if f.get("runtime") else "REPOSITORY"
        }
        _set(config, "CodeConfigurationValues", values)
        repo: dict[str, Any] = {
            "RepositoryUrl": f.get("repository", ""),
            "SourceCodeVersion": {"Type": "BRANCH", "Value": f.get("branch") or "main"},
            "CodeConfiguration": config,
        }
        _set(repo, "SourceDirectory", f.get("source_directory"))
        out["CodeRepository"] = repo
        if f.get("connection"):
            out["AuthenticationConfiguration"] = {"ConnectionArn": f["connection"]}
        return out
    image_config: dict[str, Any] = {}
    _set(image_config, "Port", f.get("port"))
    _set(image_config, "StartCommand", f.get("start_command"))
    _set(image_config, "RuntimeEnvironmentVariables", env)
    image: dict[str, Any] = {
        "ImageIdentifier": f.get("image", ""),
        "ImageRepositoryType": f.get("registry_type") or "ECR",
    }
    _set(image, "ImageConfiguration", image_config)
    out["ImageRepository"] = image
    return out


def _instance_and_health(f: Mapping[str, str], params: dict[str, Any]) -> None:
    instance: dict[str, Any] = {}
    _set(instance, "Cpu", f.get("cpu"))
    _set(instance, "Memory", f.get("memory"))
    _set(params, "InstanceConfiguration", instance)
    health: dict[str, Any] = {}
    _set(health, "Protocol", f.get("health_protocol"))
    _set(health, "Path", f.get("health_path"))
    _set(params, "HealthCheckConfiguration", health)
    _set(params, "AutoScalingConfigurationArn", f.get("auto_scaling"))


def create_service(f: Mapping[str, str]) -> dict[str, Any]:
    """``CreateService`` parameters."""
    params: dict[str, Any] = {"ServiceName": f.get("name", ""), "SourceConfiguration": source(f)}
    _instance_and_health(f, params)
    tags = pairs(f.get("tags", ""), "tags")
    if tags:
        params["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
    return params


def update_service(arn: str, f: Mapping[str, str]) -> dict[str, Any]:
    """``UpdateService`` parameters: the whole source as the edit form shows it."""
    params: dict[str, Any] = {"ServiceArn": arn, "SourceConfiguration": source(f)}
    _instance_and_health(f, params)
    return params


def form_of(service: Mapping[str, Any]) -> dict[str, str]:
    """The edit form's fields from a ``DescribeService`` answer: what ``source`` and
    ``update_service`` turn back into the same configuration."""
    src = service.get("SourceConfiguration", {})
    image = src.get("ImageRepository")
    code = src.get("CodeRepository")
    inst = service.get("InstanceConfiguration", {})
    health = service.get("HealthCheckConfiguration", {})
    f = {
        "auto_deploy": "on" if src.get("AutoDeploymentsEnabled") else "",
        "cpu": str(inst.get("Cpu", "")),
        "memory": str(inst.get("Memory", "")),
        "health_protocol": health.get("Protocol", ""),
        "health_path": health.get("Path", ""),
        "connection": src.get("AuthenticationConfiguration", {}).get("ConnectionArn", ""),
    }
    if image:
        cfg = image.get("ImageConfiguration", {})
        f |= {
            "source_kind": "image",
            "image": image.get("ImageIdentifier", ""),
            "registry_type": image.get("ImageRepositoryType", ""),
        }
    else:
        code = code or {}
        cfg = code.get("CodeConfiguration", {}).get("CodeConfigurationValues", {})
        f |= {
            "source_kind": "repository",
            "repository": code.get("RepositoryUrl", ""),
            "branch": code.get("SourceCodeVersion", {}).get("Value", ""),
            "source_directory": code.get("SourceDirectory", ""),
            "runtime": cfg.get("Runtime", ""),
            "build_command": cfg.get("BuildCommand", ""),
        }
    env = cfg.get("RuntimeEnvironmentVariables", {})
    f |= {
        "port": str(cfg.get("Port", "")),
        "start_command": cfg.get("StartCommand", ""),
        "env": "\n".join(f"{k}={v}" for k, v in env.items()),
    }
    return f
